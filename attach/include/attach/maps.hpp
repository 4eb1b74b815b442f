#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace pysample::attach {

struct MapEntry {
    std::uint64_t start = 0;
    std::uint64_t end = 0;
    std::uint64_t offset = 0;
    std::string perms;  // e.g. "r-xp"
    std::string path;   // empty for anonymous mappings

    bool readable() const { return !perms.empty() && perms[0] == 'r'; }
    bool contains(std::uint64_t addr) const { return addr >= start && addr < end; }
};

// Parses the text of /proc/PID/maps. Malformed lines, empty and backwards ranges among them, are skipped.
std::vector<MapEntry> parse_maps(std::string_view text);

// Reads and parses /proc/PID/maps; throws attach::Error when the process is gone or unreadable.
std::vector<MapEntry> read_maps(pid_t pid);

// The lowest mapping of `path` (its load address), or nullptr.
const MapEntry* first_mapping_of(const std::vector<MapEntry>& maps, std::string_view path);

}  // namespace pysample::attach
