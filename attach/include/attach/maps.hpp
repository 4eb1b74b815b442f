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
    std::string path;   // empty for anonymous mappings; newlines decoded, " (deleted)" taken off
    std::uint64_t inode = 0;
    std::uint32_t device_major = 0;
    std::uint32_t device_minor = 0;
    bool deleted = false;  // the file was deleted (or replaced by another) since it was mapped

    bool readable() const { return !perms.empty() && perms[0] == 'r'; }
    bool contains(std::uint64_t addr) const { return addr >= start && addr < end; }
};

// Parses the text of /proc/PID/maps. Malformed lines, empty and backwards ranges among them, are skipped.
std::vector<MapEntry> parse_maps(std::string_view text);

// Reads and parses /proc/PID/maps; throws attach::Error when the process is gone or unreadable.
std::vector<MapEntry> read_maps(pid_t pid);

// Where pysample can open the file a mapping of process `pid` holds: the path under the process's
// root (it may be in a chroot or container), or, when the file at that path is no longer the one
// mapped (deleted, or replaced as a package upgrade does), the mapping's own entry in
// /proc/PID/map_files, which opens the file the process still holds. Sets `replaced` in that case.
std::string openable_mapped_file(pid_t pid, const MapEntry& mapping, bool* replaced = nullptr);

// The lowest mapping of `path` (its load address), or nullptr.
const MapEntry* first_mapping_of(const std::vector<MapEntry>& maps, std::string_view path);

// The last component of a path: "libc.so.6" for /usr/lib/x86_64-linux-gnu/libc.so.6.
std::string base_name(std::string_view path);

}  // namespace pysample::attach
