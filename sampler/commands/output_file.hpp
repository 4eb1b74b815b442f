// Profile files are written whole or not at all: under a temporary name in the destination's
// directory, created anew (never through a link), and renamed over the destination once complete.
// A run interrupted while writing, or a reader opening the file meanwhile, never sees half a
// profile; a link or another user's file planted at the name is refused, not written through.
#pragma once

#include <sys/types.h>

#include <array>
#include <cerrno>
#include <chrono>
#include <ostream>
#include <streambuf>
#include <string>

namespace pysample::sampler {

// "-o -": standard output.
inline const std::string kStandardOutput = "-";

// Throws attach::Error (OutputUnwritable) naming `path` and the reason when a profile could not be
// written there: its directory is missing, is not a directory or does not let pysample create
// files, its name is too long for the file system, or `path` is a directory, a symbolic link, a
// file pysample may not write, or another user's file in a sticky directory. An empty path stands
// for a default name in the current directory.
void check_output_path(const std::string& path);

// The name a temporary file for `path` gets before mkstemp fills in the X's: ".<name>.XXXXXX" in
// the same directory (on the same file system, so that the rename is atomic).
std::string temporary_name_pattern(const std::string& path);

// The permissions a file created at `path` gets: those of the file it replaces, else 0666 less the
// umask, as if the shell had created it.
mode_t permissions_for(const std::string& path);

// Writes to a descriptor, keeping the first write error (EPIPE from a closed pipe: pysample ignores
// SIGPIPE, so one output's reader going away ends that output only).
class FdBuffer : public std::streambuf {
public:
    FdBuffer() { setp(buffer_.data(), buffer_.data() + buffer_.size()); }
    void attach(int fd) { fd_ = fd; }
    int error() const { return error_; }

protected:
    int overflow(int c) override;
    int sync() override;

private:
    bool flush_buffer();
    int fd_ = -1;
    int error_ = 0;
    std::array<char, 1 << 16> buffer_{};
};

// A file written under a temporary name and renamed to `path` by commit(); destroyed without a
// commit, it removes the temporary file. pysample's own descriptors ("-" or /dev/stdout,
// /dev/stderr, /dev/fd/N), character devices (/dev/null, a terminal) and FIFOs are written in
// place instead; a FIFO once a reader has it open (for 10 s at most).
class OutputFile {
public:
    static constexpr std::chrono::milliseconds kFifoReaderWait{10'000};
    explicit OutputFile(const std::string& path, std::chrono::milliseconds fifo_reader_wait = kFifoReaderWait);
    ~OutputFile();
    OutputFile(const OutputFile&) = delete;
    OutputFile& operator=(const OutputFile&) = delete;

    std::ostream& stream() { return stream_; }
    // Flushes the file to disk and renames it into place; throws attach::Error (OutputUnwritable).
    void commit();
    const std::string& temporary_path() const { return temporary_; }
    // Whether the reader of a pipe went away before the profile was whole (a pipe to head): that
    // output ends there, as a command in a pipeline does, and is not a failure.
    bool reader_closed() const { return buffer_.error() == EPIPE; }

private:
    void discard();
    // Removes the temporary file and throws.
    [[noreturn]] void fail(const std::string& what, int error);

    std::string given_;      // as given on the command line, for messages
    std::string path_;       // where the profile ends up
    std::string temporary_;  // empty when written in place
    int fd_ = -1;
    FdBuffer buffer_;
    std::ostream stream_;
    bool committed_ = false;
};

}  // namespace pysample::sampler
