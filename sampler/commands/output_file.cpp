#include "commands/output_file.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <chrono>
#include <climits>
#include <cstdio>
#include <cstring>
#include <optional>
#include <string_view>
#include <thread>

#include "attach/error.hpp"

namespace pysample::sampler {
namespace {

// Room for ".", ".XXXXXX" and the name within NAME_MAX.
constexpr std::size_t kMaxTemporaryBase = 200;

std::string describe(const std::string& path) {
    if (path.empty()) return "a file in the current directory";
    if (path == kStandardOutput) return "standard output";
    return "'" + path + "'";
}

[[noreturn]] void refuse(const std::string& path, const std::string& reason) {
    throw attach::Error(attach::ErrorKind::OutputUnwritable,
                        "cannot write the profile to " + describe(path) + ": " + reason);
}

std::string directory_of(const std::string& path) {
    auto slash = path.rfind('/');
    if (slash == std::string::npos) return ".";
    return slash == 0 ? "/" : path.substr(0, slash);
}

std::string name_of(const std::string& path) {
    auto slash = path.rfind('/');
    return slash == std::string::npos ? path : path.substr(slash + 1);
}

// pysample's own descriptors: "-", /dev/stdout, /dev/stderr, /dev/fd/N. Written to directly
// (also a socket, which cannot be opened by name), appending (a shell's >> stays an append).
std::optional<int> own_descriptor(const std::string& path) {
    if (path == kStandardOutput || path == "/dev/stdout") return STDOUT_FILENO;
    if (path == "/dev/stderr") return STDERR_FILENO;
    for (const char* prefix : {"/dev/fd/", "/proc/self/fd/"}) {
        std::string_view rest(path);
        if (!rest.starts_with(prefix)) continue;
        rest.remove_prefix(std::strlen(prefix));
        int fd = 0;
        auto [end, error] = std::from_chars(rest.data(), rest.data() + rest.size(), fd);
        if (error == std::errc() && end == rest.data() + rest.size() && !rest.empty()) return fd;
    }
    return std::nullopt;
}

// The system's character devices (/dev/null, a terminal) are written to in place. A regular file
// under /dev (in /dev/shm, where anyone may create files) is a file like any other.
bool is_character_device(const std::string& path) {
    struct stat st {};
    return path.starts_with("/dev/") && ::stat(path.c_str(), &st) == 0 && S_ISCHR(st.st_mode);
}

mode_t current_umask() {
    mode_t mask = ::umask(0);
    ::umask(mask);
    return mask;
}

// Creates and removes a temporary file where the profile will go: the only test that covers
// permissions, ACLs, read-only mounts and full quotas alike.
void probe_directory(const std::string& given, const std::string& path, const std::string& directory) {
    std::string pattern = temporary_name_pattern(path.empty() ? "pysample" : path);
    int fd = ::mkstemp(pattern.data());
    if (fd < 0) refuse(given, "cannot create files in directory '" + directory + "': " + std::strerror(errno));
    ::close(fd);
    ::unlink(pattern.c_str());
}

// A name the file system cannot hold is found now, not once the run is over.
void check_name_length(const std::string& given, const std::string& path, const std::string& directory) {
    long name_max = ::pathconf(directory.c_str(), _PC_NAME_MAX);
    std::string name = name_of(path);
    if (name_max > 0 && name.size() > static_cast<std::size_t>(name_max)) {
        refuse(given, "the file name is " + std::to_string(name.size()) + " bytes long, and the file system takes " +
                          std::to_string(name_max) + " at most");
    }
    if (path.size() >= PATH_MAX) {
        refuse(given, "the path is " + std::to_string(path.size()) + " bytes long, over the system's limit of " +
                          std::to_string(PATH_MAX - 1));
    }
}

// What is at `path` now, its links not followed: nullopt when nothing is.
std::optional<struct stat> entry_at(const std::string& path) {
    struct stat st {};
    if (::lstat(path.c_str(), &st) != 0) return std::nullopt;
    return st;
}

// An existing entry pysample may replace: a regular file, not a link (whose target another user
// may have chosen), and in a directory where anyone may create files (sticky, as /tmp) only a
// file of pysample's own user.
void check_replaceable(const std::string& given, const struct stat& entry, const std::string& directory) {
    if (S_ISLNK(entry.st_mode)) {
        refuse(given,
               "it is a symbolic link; pysample does not write through links, which another user may have "
               "pointed at a file of yours: give the file's own path, or another name");
    }
    if (S_ISDIR(entry.st_mode)) refuse(given, "it is a directory; give a file name");
    struct stat dir {};
    if (S_ISREG(entry.st_mode) && ::stat(directory.c_str(), &dir) == 0 && (dir.st_mode & S_ISVTX) != 0 &&
        entry.st_uid != ::geteuid()) {
        refuse(given, "the file belongs to another user (uid " + std::to_string(entry.st_uid) + ") in '" + directory +
                          "', where anyone may create files (a sticky directory, like /tmp): pysample does not "
                          "replace it; give another name");
    }
}

// Opens a FIFO for writing once a reader has it open, waiting `wait` at most: a blocking open
// would wait for ever.
int open_fifo(const std::string& given, const std::string& path, std::chrono::milliseconds wait) {
    auto deadline = std::chrono::steady_clock::now() + wait;
    for (;;) {
        int fd = ::open(path.c_str(), O_WRONLY | O_NONBLOCK | O_CLOEXEC);
        if (fd >= 0) {
            int flags = ::fcntl(fd, F_GETFL);
            ::fcntl(fd, F_SETFL, flags & ~O_NONBLOCK);
            return fd;
        }
        if (errno != ENXIO) refuse(given, std::string("cannot open the FIFO: ") + std::strerror(errno));
        if (std::chrono::steady_clock::now() >= deadline) {
            char seconds[32];
            std::snprintf(seconds, sizeof seconds, "%g", static_cast<double>(wait.count()) / 1000.0);
            refuse(given, std::string("no process opened the FIFO for reading within ") + seconds + " s");
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
}

}  // namespace

void check_output_path(const std::string& given) {
    if (auto fd = own_descriptor(given)) {
        if (::fcntl(*fd, F_GETFD) < 0) refuse(given, "descriptor " + std::to_string(*fd) + " is not open");
        return;
    }
    if (is_character_device(given)) return;
    std::string directory = directory_of(given);
    struct stat st {};
    if (::stat(directory.c_str(), &st) != 0) {
        refuse(given, errno == ENOENT ? "directory '" + directory + "' does not exist"
                                      : "directory '" + directory + "': " + std::strerror(errno));
    }
    if (!S_ISDIR(st.st_mode)) refuse(given, "'" + directory + "' is not a directory");
    if (auto entry = entry_at(given)) {
        if (S_ISFIFO(entry->st_mode)) return;
        check_replaceable(given, *entry, directory);
        if (::access(given.c_str(), W_OK) != 0) {
            refuse(given, std::string("the file is not writable: ") + std::strerror(errno));
        }
    }
    if (!given.empty()) check_name_length(given, given, directory);
    probe_directory(given, given, directory);
}

std::string temporary_name_pattern(const std::string& path) {
    auto slash = path.rfind('/');
    std::string directory = slash == std::string::npos ? "" : path.substr(0, slash + 1);
    std::string name = slash == std::string::npos ? path : path.substr(slash + 1);
    return directory + "." + name.substr(0, kMaxTemporaryBase) + ".XXXXXX";
}

mode_t permissions_for(const std::string& path) {
    auto entry = entry_at(path);
    if (entry && S_ISREG(entry->st_mode)) return entry->st_mode & 07777;
    return 0666 & ~current_umask();
}

int FdBuffer::overflow(int c) {
    if (!flush_buffer()) return traits_type::eof();
    if (c != traits_type::eof()) {
        *pptr() = static_cast<char>(c);
        pbump(1);
    }
    return traits_type::not_eof(c);
}

int FdBuffer::sync() { return flush_buffer() ? 0 : -1; }

bool FdBuffer::flush_buffer() {
    const char* next = pbase();
    while (next < pptr()) {
        ssize_t written = ::write(fd_, next, static_cast<std::size_t>(pptr() - next));
        if (written < 0 && errno == EINTR) continue;
        if (written <= 0) {
            error_ = written < 0 ? errno : EIO;
            setp(buffer_.data(), buffer_.data() + buffer_.size());
            return false;
        }
        next += written;
    }
    setp(buffer_.data(), buffer_.data() + buffer_.size());
    return error_ == 0;
}

OutputFile::OutputFile(const std::string& path, std::chrono::milliseconds fifo_reader_wait)
    : given_(path), path_(path), stream_(&buffer_) {
    if (auto fd = own_descriptor(path)) {
        fd_ = ::fcntl(*fd, F_DUPFD_CLOEXEC, 3);
        if (fd_ < 0) fail("cannot use descriptor " + std::to_string(*fd), errno);
        buffer_.attach(fd_);
        return;
    }
    if (is_character_device(path)) {
        fd_ = ::open(path.c_str(), O_WRONLY | O_CLOEXEC | O_NOCTTY);
        if (fd_ < 0) fail("cannot open it", errno);
        buffer_.attach(fd_);
        return;
    }
    auto entry = entry_at(path);
    if (entry && S_ISFIFO(entry->st_mode)) {
        fd_ = open_fifo(given_, path, fifo_reader_wait);
        buffer_.attach(fd_);
        return;
    }
    std::string directory = directory_of(path);
    if (entry) check_replaceable(given_, *entry, directory);
    std::string pattern = temporary_name_pattern(path);
    fd_ = ::mkostemp(pattern.data(), O_CLOEXEC);  // O_CREAT | O_EXCL: a new file, never a link's target
    if (fd_ < 0) fail("cannot create a temporary file in its directory", errno);
    temporary_ = pattern;
    if (::fchmod(fd_, permissions_for(path)) != 0) fail("cannot set the permissions of " + temporary_, errno);
    // A file that root replaces (sudo pysample -o ~/profile.svg) keeps its owner. Other users
    // cannot give a file away: for them the call fails, harmlessly.
    if (entry && S_ISREG(entry->st_mode)) (void)!::fchown(fd_, entry->st_uid, entry->st_gid);
    buffer_.attach(fd_);
}

OutputFile::~OutputFile() {
    if (!committed_) discard();
}

void OutputFile::discard() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
    if (!temporary_.empty()) ::unlink(temporary_.c_str());
}

// rename() replaces the directory entry at the path, whatever it has become since it was checked
// (a link planted meanwhile is replaced, not followed).
void OutputFile::commit() {
    stream_.flush();
    if (temporary_.empty() && reader_closed()) {
        discard();
        committed_ = true;
        return;
    }
    if (!stream_ || buffer_.error() != 0) fail("writing failed", buffer_.error());
    // On disk before the rename, so that a crash leaves the old file or the whole new one.
    if (!temporary_.empty() && ::fsync(fd_) != 0) fail("writing failed", errno);
    if (!temporary_.empty() && ::rename(temporary_.c_str(), path_.c_str()) != 0) {
        fail("cannot rename " + temporary_ + " to it", errno);
    }
    ::close(fd_);
    fd_ = -1;
    committed_ = true;
}

void OutputFile::fail(const std::string& what, int error) {
    discard();
    std::string reason = what;
    if (error == EPIPE) {
        reason += ": the reading end was closed (a pipe to a program that exited, such as head)";
    } else if (error != 0) {
        reason += std::string(": ") + std::strerror(error);
    }
    refuse(given_, reason);
}

}  // namespace pysample::sampler
