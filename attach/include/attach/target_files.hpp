// Files as a process sees them: through /proc/PID/root and /proc/PID/cwd, so a process in a
// container or chroot is read from its own filesystem.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <optional>
#include <string>

namespace pysample::attach {

struct TargetFile {
    std::string text;           // at most the bytes asked for
    bool truncated = false;     // the file is longer
    std::int64_t mtime_ns = 0;  // last modification, ns since the Unix epoch
    std::string read_from;      // the path it was read at
};

// Reads `path` as the process names it (relative paths from its working directory); when the
// process is gone, from this machine's own filesystem. nullopt when no such file can be read.
std::optional<TargetFile> read_target_file(pid_t pid, const std::string& path, std::size_t max_bytes);

// When the process started, in ns since the Unix epoch; nullopt when it cannot be told.
std::optional<std::int64_t> process_start_ns(pid_t pid);

}  // namespace pysample::attach
