#include "output_file.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cstdlib>
#include <cstring>
#include <memory>

#include "attach/error.hpp"

namespace pysample::sampler {
namespace {

// Room for ".", ".XXXXXX" and the name within NAME_MAX.
constexpr std::size_t kMaxTemporaryBase = 200;

[[noreturn]] void refuse(const std::string& path, const std::string& reason) {
    std::string where = path.empty() ? "a file in the current directory" : "'" + path + "'";
    throw attach::Error(attach::ErrorKind::OutputUnwritable, "cannot write the profile to " + where + ": " + reason);
}

std::string directory_of(const std::string& path) {
    auto slash = path.rfind('/');
    if (slash == std::string::npos) return ".";
    return slash == 0 ? "/" : path.substr(0, slash);
}

// A symbolic link is followed, so that the file it points to is replaced rather than the link,
// even when that file does not exist yet.
std::string resolved(const std::string& path) {
    std::unique_ptr<char, decltype(&std::free)> real(::realpath(path.c_str(), nullptr), &std::free);
    if (real) return real.get();
    std::string target = path;
    for (int links = 0; links < 40; ++links) {
        char buffer[PATH_MAX];
        ssize_t length = ::readlink(target.c_str(), buffer, sizeof buffer);
        if (length <= 0 || static_cast<std::size_t>(length) >= sizeof buffer) return target;
        std::string next(buffer, static_cast<std::size_t>(length));
        target = next.front() == '/' ? next : directory_of(target) + "/" + next;
    }
    return target;
}

// Devices and FIFOs (/dev/stdout, /dev/null, a named pipe) cannot be replaced: they are written to.
bool written_in_place(const std::string& path) {
    struct stat st {};
    return path.starts_with("/dev/") || (::stat(path.c_str(), &st) == 0 && !S_ISREG(st.st_mode));
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

// A file that root replaces (sudo pysample -o ~/profile.svg) keeps its owner. Other users cannot
// give a file away: for them the call fails, harmlessly.
void keep_owner(int fd, const std::string& path) {
    struct stat st {};
    if (::stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode)) (void)!::fchown(fd, st.st_uid, st.st_gid);
}

}  // namespace

void check_output_path(const std::string& given) {
    struct stat st {};
    if (!given.empty() && ::stat(given.c_str(), &st) == 0) {
        if (S_ISDIR(st.st_mode)) refuse(given, "it is a directory; give a file name");
        if (::access(given.c_str(), W_OK) != 0)
            refuse(given, std::string("the file is not writable: ") + std::strerror(errno));
        if (written_in_place(given)) return;
    }
    std::string path = given.empty() ? given : resolved(given);
    std::string directory = directory_of(path);
    if (::stat(directory.c_str(), &st) != 0) {
        refuse(given, errno == ENOENT ? "directory '" + directory + "' does not exist"
                                      : "directory '" + directory + "': " + std::strerror(errno));
    }
    if (!S_ISDIR(st.st_mode)) refuse(given, "'" + directory + "' is not a directory");
    probe_directory(given, path, directory);
}

std::string temporary_name_pattern(const std::string& path) {
    auto slash = path.rfind('/');
    std::string directory = slash == std::string::npos ? "" : path.substr(0, slash + 1);
    std::string name = slash == std::string::npos ? path : path.substr(slash + 1);
    return directory + "." + name.substr(0, kMaxTemporaryBase) + ".XXXXXX";
}

mode_t permissions_for(const std::string& path) {
    struct stat st {};
    if (::stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode)) return st.st_mode & 07777;
    return 0666 & ~current_umask();
}

OutputFile::OutputFile(const std::string& path) : given_(path), path_(path) {
    if (written_in_place(path)) {
        stream_.open(path, std::ios::binary | std::ios::trunc);
        if (!stream_) fail("cannot open it", errno);
        return;
    }
    path_ = resolved(path);
    std::string pattern = temporary_name_pattern(path_);
    fd_ = ::mkstemp(pattern.data());
    if (fd_ < 0) fail("cannot create a temporary file in its directory", errno);
    temporary_ = pattern;
    if (::fchmod(fd_, permissions_for(path_)) != 0) fail("cannot set the permissions of " + temporary_, errno);
    keep_owner(fd_, path_);
    stream_.open(temporary_, std::ios::binary | std::ios::trunc);
    if (!stream_) fail("cannot open " + temporary_, errno);
}

OutputFile::~OutputFile() {
    if (!committed_) discard();
}

void OutputFile::discard() {
    stream_.close();
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
    if (!temporary_.empty()) ::unlink(temporary_.c_str());
}

void OutputFile::commit() {
    stream_.close();
    if (!stream_) fail("writing failed", errno);
    // On disk before the rename, so that a crash leaves the old file or the whole new one.
    if (fd_ >= 0 && ::fsync(fd_) != 0) fail("writing failed", errno);
    if (!temporary_.empty() && ::rename(temporary_.c_str(), path_.c_str()) != 0) {
        fail("cannot rename " + temporary_ + " to it", errno);
    }
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
    committed_ = true;
}

void OutputFile::fail(const std::string& what, int error) {
    discard();
    refuse(given_, what + (error != 0 ? std::string(": ") + std::strerror(error) : std::string()));
}

}  // namespace pysample::sampler
