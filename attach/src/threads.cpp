#include "attach/threads.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstring>
#include <fstream>
#include <sstream>
#include <thread>

#include "attach/error.hpp"
#include "attach/memory.hpp"

namespace pysample::attach {
namespace {

std::string proc_path(pid_t pid, const std::string& rest) { return "/proc/" + std::to_string(pid) + rest; }

std::optional<std::string> read_small_file(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) return std::nullopt;
    std::stringstream buffer;
    buffer << in.rdbuf();
    return buffer.str();
}

// The state letter of a /proc stat line. The command name before it may contain spaces or
// parentheses: the state follows the last ')'.
char state_in_stat(std::string_view stat) {
    auto close = stat.rfind(')');
    if (close == std::string_view::npos || close + 2 >= stat.size()) return '?';
    return stat[close + 2];
}

// The parent pid, the field after the state.
std::string parent_in_stat(std::string_view stat) {
    auto close = stat.rfind(')');
    if (close == std::string_view::npos || close + 4 >= stat.size()) return "?";
    auto fields = stat.substr(close + 4);
    return std::string(fields.substr(0, fields.find(' ')));
}

}  // namespace

bool process_exists(pid_t pid) { return pid > 0 && (::kill(pid, 0) == 0 || errno == EPERM); }

void check_process(pid_t pid) {
    if (pid <= 0) throw Error(ErrorKind::Usage, "invalid pid " + std::to_string(pid));
    if (!process_exists(pid)) {
        throw Error(ErrorKind::NoSuchProcess, "no process with pid " + std::to_string(pid) + " is running");
    }
    if (::access(proc_path(pid, "/mem").c_str(), R_OK) != 0 && errno == EACCES) {
        throw Error(ErrorKind::PermissionDenied, permission_hint(pid));
    }
    auto stat = read_small_file(proc_path(pid, "/stat"));
    if (stat) {
        if (state_in_stat(*stat) == 'Z') {
            std::string parent = parent_in_stat(*stat);
            throw Error(ErrorKind::TargetExited, "process " + std::to_string(pid) +
                                                     " is a zombie: it has exited and its parent (pid " + parent +
                                                     ") has not reaped it; there is nothing left to sample");
        }
    }
}

std::vector<pid_t> list_threads(pid_t pid) {
    std::vector<pid_t> tids;
    DIR* dir = ::opendir(proc_path(pid, "/task").c_str());
    if (dir == nullptr) return tids;
    while (dirent* entry = ::readdir(dir)) {
        char* end = nullptr;
        long tid = std::strtol(entry->d_name, &end, 10);
        if (end != entry->d_name && *end == '\0' && tid > 0 && tid <= INT_MAX) {
            tids.push_back(static_cast<pid_t>(tid));
        }
    }
    ::closedir(dir);
    return tids;
}

char read_thread_state(pid_t pid, pid_t tid) {
    auto stat = read_small_file(proc_path(pid, "/task/" + std::to_string(tid) + "/stat"));
    return stat ? state_in_stat(*stat) : '?';
}

std::optional<ThreadStatus> read_thread_status(pid_t pid, pid_t tid) {
    ThreadStatus status;
    status.state = read_thread_state(pid, tid);
    if (status.state == '?') return std::nullopt;
    if (auto comm = read_small_file(proc_path(pid, "/task/" + std::to_string(tid) + "/comm"))) {
        while (!comm->empty() && comm->back() == '\n') comm->pop_back();
        status.name = *comm;
    }
    return status;
}

std::string read_cmdline(pid_t pid) {
    auto raw = read_small_file(proc_path(pid, "/cmdline")).value_or("");
    while (!raw.empty() && raw.back() == '\0') raw.pop_back();
    for (char& c : raw) {
        if (c == '\0') c = ' ';
    }
    return raw;
}

std::string read_exe_path(pid_t pid) {
    char buf[PATH_MAX];
    ssize_t n = ::readlink(proc_path(pid, "/exe").c_str(), buf, sizeof(buf) - 1);
    if (n < 0) return {};
    return std::string(buf, static_cast<std::size_t>(n));
}

std::string path_in_root(pid_t pid, const std::string& path) {
    std::string in_root = proc_path(pid, "/root") + path;
    if (::access(in_root.c_str(), R_OK) == 0) return in_root;
    return path;
}

}  // namespace pysample::attach

namespace pysample::attach {

ThreadStateReader::~ThreadStateReader() {
    for (auto& [tid, fd] : fds_) ::close(fd);
}

char ThreadStateReader::read_state(pid_t tid) {
    int fd = -1;
    for (auto& [known, known_fd] : fds_) {
        if (known == tid) fd = known_fd;
    }
    if (fd < 0) {
        std::string path = "/proc/" + std::to_string(pid_) + "/task/" + std::to_string(tid) + "/stat";
        fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
        if (fd < 0) return '?';
        fds_.emplace_back(tid, fd);
    }
    char buf[512];
    ssize_t n = ::pread(fd, buf, sizeof(buf) - 1, 0);
    if (n <= 0) return '?';
    return state_in_stat(std::string_view(buf, static_cast<std::size_t>(n)));
}

std::vector<std::pair<pid_t, char>> ThreadStateReader::read_all() {
    std::vector<std::pair<pid_t, char>> states;
    auto tids = list_threads(pid_);
    // Forget threads that have gone so their descriptors do not pile up.
    std::erase_if(fds_, [&](const auto& entry) {
        bool gone = std::find(tids.begin(), tids.end(), entry.first) == tids.end();
        if (gone) ::close(entry.second);
        return gone;
    });
    for (pid_t tid : tids) states.emplace_back(tid, read_state(tid));
    return states;
}

}  // namespace pysample::attach

namespace pysample::attach {
namespace {

constexpr std::size_t kPthreadScanBytes = 2048;

std::vector<std::size_t> offsets_holding_own_tid() {
    std::vector<std::size_t> offsets;
    auto self = reinterpret_cast<const std::uint8_t*>(::pthread_self());
    auto tid = static_cast<std::int32_t>(::gettid());
    for (std::size_t offset = 0; offset + sizeof(tid) <= kPthreadScanBytes; offset += sizeof(tid)) {
        std::int32_t value;
        std::memcpy(&value, self + offset, sizeof(value));
        if (value == tid) offsets.push_back(offset);
    }
    return offsets;
}

}  // namespace

// Candidates seen in two threads with different tids leave only the real field.
std::optional<std::size_t> pthread_tid_offset() {
    static const std::optional<std::size_t> offset = [] {
        auto main_offsets = offsets_holding_own_tid();
        std::vector<std::size_t> other_offsets;
        std::thread([&] { other_offsets = offsets_holding_own_tid(); }).join();
        std::optional<std::size_t> found;
        for (std::size_t candidate : main_offsets) {
            if (std::find(other_offsets.begin(), other_offsets.end(), candidate) == other_offsets.end()) continue;
            if (found) return std::optional<std::size_t>{};  // ambiguous
            found = candidate;
        }
        return found;
    }();
    return offset;
}

std::optional<pid_t> tid_of_pthread(Memory& memory, std::uint64_t pthread_id) {
    auto offset = pthread_tid_offset();
    std::int32_t tid = 0;
    if (!offset || pthread_id == 0 || !memory.read_value(pthread_id + *offset, tid) || tid <= 0) return std::nullopt;
    return static_cast<pid_t>(tid);
}

}  // namespace pysample::attach
