// parse_maps over arbitrary text: every entry it keeps is a well-formed mapping, and writing the
// entries back in the kernel's format (a newline in a path as \012, " (deleted)" after a deleted
// file) and parsing that again gives the same entries.
#include <cinttypes>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "attach/maps.hpp"

using pysample::attach::MapEntry;

namespace {

void require(bool condition) {
    if (!condition) std::abort();
}

std::string to_maps_line(const MapEntry& entry) {
    char range[40];
    char offset[24];
    std::snprintf(range, sizeof(range), "%" PRIx64 "-%" PRIx64, entry.start, entry.end);
    std::snprintf(offset, sizeof(offset), "%08" PRIx64, entry.offset);
    std::string path;
    for (char c : entry.path) path += c == '\n' ? std::string("\\012") : std::string(1, c);
    if (entry.deleted) path += " (deleted)";
    return std::string(range) + " " + entry.perms + " " + offset + " 00:00 0 " + path + "\n";
}

bool same_entry(const MapEntry& a, const MapEntry& b) {
    return a.start == b.start && a.end == b.end && a.offset == b.offset && a.perms == b.perms && a.path == b.path &&
           a.deleted == b.deleted;
}

void check_entry(const MapEntry& entry) {
    require(entry.start < entry.end);
    require(entry.contains(entry.start) && !entry.contains(entry.end));
    require(entry.perms.size() == 4);
    require(!entry.deleted || (!entry.path.empty() && entry.path.front() == '/'));
    (void)entry.readable();
}

void check_lowest_mappings(const std::vector<MapEntry>& maps) {
    for (const auto& entry : maps) {
        const MapEntry* lowest = pysample::attach::first_mapping_of(maps, entry.path);
        require(lowest != nullptr && lowest->path == entry.path && lowest->start <= entry.start);
    }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    std::string_view text(reinterpret_cast<const char*>(data), size);
    auto maps = pysample::attach::parse_maps(text);
    std::string rewritten;
    for (const auto& entry : maps) {
        check_entry(entry);
        rewritten += to_maps_line(entry);
    }
    if (maps.size() <= 64) check_lowest_mappings(maps);
    auto reparsed = pysample::attach::parse_maps(rewritten);
    require(reparsed.size() == maps.size());
    for (std::size_t i = 0; i < maps.size(); ++i) require(same_entry(maps[i], reparsed[i]));
    return 0;
}
