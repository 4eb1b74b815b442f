#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace pysample::attach {

bool process_exists(pid_t pid);
// Throws attach::Error (NoSuchProcess / PermissionDenied) unless the pid can be inspected.
void check_process(pid_t pid);

std::vector<pid_t> list_threads(pid_t pid);
// Whether `tid` is a thread of process `pid` (as pysample numbers both).
bool is_thread_of(pid_t pid, pid_t tid);

struct ThreadStatus {
    char state = '?';  // R, S, D, T, Z... from /proc/PID/task/TID/stat
    std::string name;  // /proc/PID/task/TID/comm
    bool running() const { return state == 'R'; }
};
std::optional<ThreadStatus> read_thread_status(pid_t pid, pid_t tid);
char read_thread_state(pid_t pid, pid_t tid);
// The pid of the process tracing a thread (TracerPid), 0 when none, -1 when unreadable.
pid_t tracer_of(pid_t pid, pid_t tid);
// A numeric field of /proc/PID/task/TID/status ("TracerPid", "NSpid": the last number of the line).
std::optional<long> status_field(pid_t pid, pid_t tid, std::string_view field);

std::string read_cmdline(pid_t pid);
// What identifies the program a process runs, the same until it execs another (or the same one
// again): its executable and where the kernel laid out its code, stack, heap and arguments
// (/proc/PID/stat), which address-space randomisation draws afresh at each exec. A new title
// (setproctitle rewrites the arguments in place) does not change it. Empty when unreadable.
std::string process_image(pid_t pid);
std::string read_exe_path(pid_t pid);
// Where a path from the target's maps can be opened from here (the target may be in a chroot or container).
std::string path_in_root(pid_t pid, const std::string& path);

}  // namespace pysample::attach

namespace pysample::attach {

// Reads thread scheduler states and CPU times repeatedly, keeping each /proc/PID/task/TID/stat
// and schedstat open between reads (one pread per thread per sample instead of open/read/close).
class ThreadStateReader {
public:
    explicit ThreadStateReader(pid_t pid) : pid_(pid) {}
    ~ThreadStateReader();
    ThreadStateReader(const ThreadStateReader&) = delete;
    ThreadStateReader& operator=(const ThreadStateReader&) = delete;

    // State letter per thread currently in /proc/PID/task; empty when the process is gone.
    std::vector<std::pair<pid_t, char>> read_all();
    // One thread's state letter; '?' when it cannot be read (the thread is gone).
    char read_state(pid_t tid);
    // How long the thread has run on a CPU, and waited on a run queue for one, since it started,
    // in nanoseconds (/proc/PID/task/TID/schedstat; exact as of its last context switch or
    // scheduler tick); nullopt when it cannot be read.
    struct CpuTimes {
        std::uint64_t running = 0;
        std::uint64_t waiting = 0;
        std::uint64_t runs = 0;  // how many times it was given a CPU
    };
    std::optional<CpuTimes> read_cpu_times(pid_t tid);

private:
    struct Files {
        int stat = -1;
        int schedstat = -1;
    };
    Files& files(pid_t tid);

    pid_t pid_;
    std::unordered_map<pid_t, Files> files_;
};

}  // namespace pysample::attach

namespace pysample::attach {

// Thread ids as the target knows them and as pysample knows them. A process in its own PID
// namespace (any container) records its threads' ids in that namespace: thread 1 there is some
// other number here, and the number it has there may be another process's id here. The kernel
// lists each thread's ids in every namespace from pysample's /proc down in the NSpid line of
// /proc/PID/task/TID/status; a thread of the target is only ever looked up among its own tasks.
class NamespaceTids {
public:
    explicit NamespaceTids(pid_t pid);
    // Whether the target lives in another PID namespace than the one of pysample's /proc.
    bool separate() const { return separate_; }
    // pysample's id of the target's thread the target calls `inner`; 0 when it has no such thread.
    pid_t to_host(pid_t inner);
    // The target's own id of its thread `host` (itself when not separate); 0 when unknown.
    pid_t to_inner(pid_t host);

private:
    void refresh();

    pid_t pid_;
    bool separate_ = false;
    std::vector<std::pair<pid_t, pid_t>> ids_;  // (inner, host), sorted by inner
    std::chrono::steady_clock::time_point refreshed_at_{};
};

class Memory;

// On glibc a pthread_t is the address of the thread's `struct pthread`, which records the
// kernel tid. The offset of that field is found once in this process (same libc as targets on
// the same system) and checked against a thread whose tid is known before it is trusted.
std::optional<std::size_t> pthread_tid_offset();
std::optional<pid_t> tid_of_pthread(Memory& memory, std::uint64_t pthread_id);

}  // namespace pysample::attach
