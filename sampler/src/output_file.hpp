// Profile files are written whole or not at all: under a temporary name in the destination's
// directory, renamed over the destination once complete. A run interrupted while writing, or a
// reader opening the file meanwhile, never sees half a profile.
#pragma once

#include <sys/types.h>

#include <fstream>
#include <string>

namespace pysample::sampler {

// Throws attach::Error (OutputUnwritable) naming `path` and the reason when a profile could not be
// written there: its directory is missing, is not a directory or does not let pysample create
// files, or `path` is a directory or a file pysample may not write. An empty path stands for a
// default name in the current directory.
void check_output_path(const std::string& path);

// The name a temporary file for `path` gets before mkstemp fills in the X's: ".<name>.XXXXXX" in
// the same directory (on the same file system, so that the rename is atomic).
std::string temporary_name_pattern(const std::string& path);

// The permissions a file created at `path` gets: those of the file it replaces, else 0666 less the
// umask, as if the shell had created it.
mode_t permissions_for(const std::string& path);

// A file written under a temporary name and renamed to `path` by commit(); destroyed without a
// commit, it removes the temporary file. An existing `path` that is not a regular file (a FIFO,
// /dev/stdout) is written in place instead, as it cannot be replaced.
class OutputFile {
public:
    explicit OutputFile(const std::string& path);
    ~OutputFile();
    OutputFile(const OutputFile&) = delete;
    OutputFile& operator=(const OutputFile&) = delete;

    std::ostream& stream() { return stream_; }
    // Flushes the file to disk and renames it into place; throws attach::Error (OutputUnwritable).
    void commit();
    const std::string& temporary_path() const { return temporary_; }

private:
    void discard();
    // Removes the temporary file and throws.
    [[noreturn]] void fail(const std::string& what, int error);

    std::string given_;      // as given on the command line, for messages
    std::string path_;       // where the profile ends up (a symbolic link's target)
    std::string temporary_;  // empty when written in place
    int fd_ = -1;
    std::ofstream stream_;
    bool committed_ = false;
};

}  // namespace pysample::sampler
