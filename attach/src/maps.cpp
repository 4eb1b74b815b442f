#include "attach/maps.hpp"

#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <optional>
#include <sstream>

#include "attach/error.hpp"
#include "attach/threads.hpp"

namespace pysample::attach {
namespace {

bool parse_hex(std::string_view& text, std::uint64_t& out) {
    auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), out, 16);
    if (ec != std::errc{}) return false;
    text.remove_prefix(static_cast<std::size_t>(ptr - text.data()));
    return true;
}

bool expect(std::string_view& text, char c) {
    if (text.empty() || text.front() != c) return false;
    text.remove_prefix(1);
    return true;
}

std::string_view next_field(std::string_view& text) {
    while (!text.empty() && text.front() == ' ') text.remove_prefix(1);
    auto end = text.find(' ');
    auto field = text.substr(0, end);
    text.remove_prefix(end == std::string_view::npos ? text.size() : end);
    return field;
}

// The kernel writes a newline in a path as "\012" (a line per mapping), and " (deleted)" after the
// path of a file that was unlinked.
std::string decode_path(std::string_view text, bool& deleted) {
    constexpr std::string_view kDeleted = " (deleted)";
    deleted = text.size() > kDeleted.size() && text.ends_with(kDeleted) && text.front() == '/';
    if (deleted) text.remove_suffix(kDeleted.size());
    std::string path;
    path.reserve(text.size());
    for (std::size_t i = 0; i < text.size(); ++i) {
        if (text.substr(i, 4) == "\\012") {
            path.push_back('\n');
            i += 3;
        } else {
            path.push_back(text[i]);
        }
    }
    return path;
}

std::optional<MapEntry> parse_line(std::string_view line) {
    MapEntry entry;
    if (!parse_hex(line, entry.start) || !expect(line, '-') || !parse_hex(line, entry.end) || !expect(line, ' ') ||
        entry.end <= entry.start) {
        return std::nullopt;
    }
    entry.perms = std::string(next_field(line));
    std::string_view offset = next_field(line);
    if (entry.perms.size() != 4 || !parse_hex(offset, entry.offset)) return std::nullopt;
    std::string_view device = next_field(line);
    std::string_view inode = next_field(line);
    auto colon = device.find(':');
    if (colon != std::string_view::npos) {
        std::string_view major = device.substr(0, colon);
        std::string_view minor = device.substr(colon + 1);
        std::from_chars(major.data(), major.data() + major.size(), entry.device_major, 16);
        std::from_chars(minor.data(), minor.data() + minor.size(), entry.device_minor, 16);
    }
    std::from_chars(inode.data(), inode.data() + inode.size(), entry.inode, 10);
    while (!line.empty() && line.front() == ' ') line.remove_prefix(1);
    entry.path = decode_path(line, entry.deleted);
    return entry;
}

}  // namespace

std::vector<MapEntry> parse_maps(std::string_view text) {
    std::vector<MapEntry> maps;
    while (!text.empty()) {
        auto eol = text.find('\n');
        auto line = text.substr(0, eol);
        text.remove_prefix(eol == std::string_view::npos ? text.size() : eol + 1);
        if (auto entry = parse_line(line)) maps.push_back(std::move(*entry));
    }
    return maps;
}

std::vector<MapEntry> read_maps(pid_t pid) {
    const std::string path = "/proc/" + std::to_string(pid) + "/maps";
    std::ifstream in(path);
    if (!in) {
        int err = errno;
        if (err == EACCES || err == EPERM) throw Error(ErrorKind::PermissionDenied, permission_hint(pid));
        throw Error(ErrorKind::NoSuchProcess, "cannot read " + path + ": " + std::strerror(err));
    }
    std::stringstream buffer;
    buffer << in.rdbuf();
    return parse_maps(buffer.str());
}

std::string openable_mapped_file(pid_t pid, const MapEntry& mapping, bool* replaced) {
    std::string in_root = path_in_root(pid, mapping.path);
    struct stat on_disk {};
    // The inode alone: overlay file systems (containers) may show another device in the maps.
    bool same_file = !mapping.deleted && ::stat(in_root.c_str(), &on_disk) == 0 &&
                     (mapping.inode == 0 || on_disk.st_ino == mapping.inode);
    if (replaced != nullptr) *replaced = !same_file;
    if (same_file) return in_root;
    char range[64];
    std::snprintf(range, sizeof range, "/%llx-%llx", static_cast<unsigned long long>(mapping.start),
                  static_cast<unsigned long long>(mapping.end));
    return "/proc/" + std::to_string(pid) + "/map_files" + range;
}

const MapEntry* first_mapping_of(const std::vector<MapEntry>& maps, std::string_view path) {
    const MapEntry* best = nullptr;
    for (const auto& entry : maps) {
        if (entry.path == path && (best == nullptr || entry.start < best->start)) best = &entry;
    }
    return best;
}

std::string base_name(std::string_view path) {
    auto slash = path.rfind('/');
    return std::string(slash == std::string_view::npos ? path : path.substr(slash + 1));
}

}  // namespace pysample::attach
