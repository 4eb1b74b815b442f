#include "attach/maps.hpp"

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <fstream>
#include <optional>
#include <sstream>

#include "attach/error.hpp"

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

std::optional<MapEntry> parse_line(std::string_view line) {
    MapEntry entry;
    if (!parse_hex(line, entry.start) || !expect(line, '-') || !parse_hex(line, entry.end) || !expect(line, ' ') ||
        entry.end <= entry.start) {
        return std::nullopt;
    }
    entry.perms = std::string(next_field(line));
    std::string_view offset = next_field(line);
    if (entry.perms.size() != 4 || !parse_hex(offset, entry.offset)) return std::nullopt;
    next_field(line);  // device
    next_field(line);  // inode
    while (!line.empty() && line.front() == ' ') line.remove_prefix(1);
    entry.path = std::string(line);
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

const MapEntry* first_mapping_of(const std::vector<MapEntry>& maps, std::string_view path) {
    const MapEntry* best = nullptr;
    for (const auto& entry : maps) {
        if (entry.path == path && (best == nullptr || entry.start < best->start)) best = &entry;
    }
    return best;
}

}  // namespace pysample::attach
