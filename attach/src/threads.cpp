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

bool is_thread_of(pid_t pid, pid_t tid) {
    return tid > 0 && ::access(proc_path(pid, "/task/" + std::to_string(tid)).c_str(), F_OK) == 0;
}

char read_thread_state(pid_t pid, pid_t tid) {
    auto stat = read_small_file(proc_path(pid, "/task/" + std::to_string(tid) + "/stat"));
    return stat ? state_in_stat(*stat) : '?';
}

std::optional<long> status_field(pid_t pid, pid_t tid, std::string_view field) {
    auto status = read_small_file(proc_path(pid, "/task/" + std::to_string(tid) + "/status"));
    if (!status) return std::nullopt;
    std::string_view text(*status);
    for (std::size_t start = 0; start < text.size();) {
        auto end = text.find('\n', start);
        auto line = text.substr(start, end == std::string_view::npos ? std::string_view::npos : end - start);
        start = end == std::string_view::npos ? text.size() : end + 1;
        if (!line.starts_with(field) || line.size() <= field.size() || line[field.size()] != ':') continue;
        auto last = line.find_last_of(" \t");
        if (last == std::string_view::npos) return std::nullopt;
        char* parsed_end = nullptr;
        std::string number(line.substr(last + 1));
        long value = std::strtol(number.c_str(), &parsed_end, 10);
        if (parsed_end == number.c_str() || *parsed_end != '\0') return std::nullopt;
        return value;
    }
    return std::nullopt;
}

pid_t tracer_of(pid_t pid, pid_t tid) {
    auto tracer = status_field(pid, tid, "TracerPid");
    return tracer ? static_cast<pid_t>(*tracer) : -1;
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

std::string process_image(pid_t pid) {
    auto stat = read_small_file(proc_path(pid, "/stat"));
    if (!stat) return {};
    auto close = stat->rfind(')');
    if (close == std::string::npos) return {};
    // Fields from the state (3rd) on; startcode, endcode and startstack are the 26th to 28th,
    // start_brk and arg_start the 47th and 48th.
    std::istringstream fields(stat->substr(close + 2));
    std::vector<std::string> values;
    for (std::string field; fields >> field;) values.push_back(field);
    auto field = [&](std::size_t number) { return number - 3 < values.size() ? values[number - 3] : std::string(); };
    // A process that has exited but is not reaped yet has no image left: it did not exec.
    if (field(3) == "Z" || field(3) == "X") return {};
    return read_exe_path(pid) + " " + field(26) + " " + field(27) + " " + field(28) + " " + field(47) + " " + field(48);
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
    for (auto& [tid, files] : files_) {
        if (files.stat >= 0) ::close(files.stat);
        if (files.schedstat >= 0) ::close(files.schedstat);
    }
}

ThreadStateReader::Files& ThreadStateReader::files(pid_t tid) { return files_[tid]; }

namespace {

// Reads a small /proc file of the thread through a descriptor kept open in `fd`.
ssize_t read_task_file(pid_t pid, pid_t tid, const char* name, int& fd, char* buf, std::size_t size) {
    if (fd < 0) {
        std::string path = "/proc/" + std::to_string(pid) + "/task/" + std::to_string(tid) + "/" + name;
        fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
        if (fd < 0) return -1;
    }
    return ::pread(fd, buf, size - 1, 0);
}

}  // namespace

char ThreadStateReader::read_state(pid_t tid) {
    char buf[512];
    ssize_t n = read_task_file(pid_, tid, "stat", files(tid).stat, buf, sizeof buf);
    if (n <= 0) return '?';
    return state_in_stat(std::string_view(buf, static_cast<std::size_t>(n)));
}

std::optional<ThreadStateReader::CpuTimes> ThreadStateReader::read_cpu_times(pid_t tid) {
    char buf[128];
    ssize_t n = read_task_file(pid_, tid, "schedstat", files(tid).schedstat, buf, sizeof buf);
    if (n <= 0) return std::nullopt;
    buf[n] = '\0';
    char* end = nullptr;
    CpuTimes times;
    times.running = std::strtoull(buf, &end, 10);
    if (end == buf) return std::nullopt;
    char* waiting_end = nullptr;
    times.waiting = std::strtoull(end, &waiting_end, 10);
    if (waiting_end == end) return std::nullopt;
    times.runs = std::strtoull(waiting_end, nullptr, 10);
    return times;
}

std::vector<std::pair<pid_t, char>> ThreadStateReader::read_all() {
    std::vector<std::pair<pid_t, char>> states;
    auto tids = list_threads(pid_);
    // Forget threads that have gone so their descriptors do not pile up.
    std::erase_if(files_, [&](auto& entry) {
        bool gone = std::find(tids.begin(), tids.end(), entry.first) == tids.end();
        if (gone) {
            if (entry.second.stat >= 0) ::close(entry.second.stat);
            if (entry.second.schedstat >= 0) ::close(entry.second.schedstat);
        }
        return gone;
    });
    for (pid_t tid : tids) states.emplace_back(tid, read_state(tid));
    return states;
}

}  // namespace pysample::attach

namespace pysample::attach {

NamespaceTids::NamespaceTids(pid_t pid) : pid_(pid) {
    auto status = read_small_file(proc_path(pid, "/status"));
    if (!status) return;
    auto line = status->find("\nNSpid:");
    if (line == std::string::npos) return;
    std::istringstream ids(status->substr(line + 7, status->find('\n', line + 1) - line - 7));
    std::size_t count = 0;
    for (long id = 0; ids >> id;) ++count;
    separate_ = count > 1;
    if (separate_) refresh();
}

void NamespaceTids::refresh() {
    refreshed_at_ = std::chrono::steady_clock::now();
    ids_.clear();
    for (pid_t tid : list_threads(pid_)) {
        if (auto inner = status_field(pid_, tid, "NSpid")) ids_.emplace_back(static_cast<pid_t>(*inner), tid);
    }
    std::sort(ids_.begin(), ids_.end());
}

// A thread not known yet makes the tasks be read again, at most every few milliseconds.
pid_t NamespaceTids::to_host(pid_t inner) {
    if (!separate_) return inner;
    constexpr auto kRefreshEvery = std::chrono::milliseconds(5);
    for (int attempt = 0; attempt < 2; ++attempt) {
        auto it = std::lower_bound(ids_.begin(), ids_.end(), std::pair<pid_t, pid_t>(inner, 0));
        if (it != ids_.end() && it->first == inner) return it->second;
        if (attempt > 0 || std::chrono::steady_clock::now() - refreshed_at_ < kRefreshEvery) break;
        refresh();
    }
    return 0;
}

pid_t NamespaceTids::to_inner(pid_t host) {
    if (!separate_) return host;
    for (const auto& [inner, known] : ids_) {
        if (known == host) return inner;
    }
    return 0;
}

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
