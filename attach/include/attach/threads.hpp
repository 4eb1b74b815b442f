#pragma once

#include <sys/types.h>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace pysample::attach {

bool process_exists(pid_t pid);
// Throws attach::Error (NoSuchProcess / PermissionDenied) unless the pid can be inspected.
void check_process(pid_t pid);

std::vector<pid_t> list_threads(pid_t pid);

struct ThreadStatus {
    char state = '?';  // R, S, D, T, Z... from /proc/PID/task/TID/stat
    std::string name;  // /proc/PID/task/TID/comm
    bool running() const { return state == 'R'; }
};
std::optional<ThreadStatus> read_thread_status(pid_t pid, pid_t tid);
char read_thread_state(pid_t pid, pid_t tid);

std::string read_cmdline(pid_t pid);
std::string read_exe_path(pid_t pid);
// Where a path from the target's maps can be opened from here (the target may be in a chroot or container).
std::string path_in_root(pid_t pid, const std::string& path);

}  // namespace pysample::attach

namespace pysample::attach {

// Reads thread scheduler states repeatedly, keeping each /proc/PID/task/TID/stat open between
// reads (one pread per thread per sample instead of open/read/close).
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

private:

    pid_t pid_;
    std::vector<std::pair<pid_t, int>> fds_;
};

}  // namespace pysample::attach

namespace pysample::attach {

class Memory;

// On glibc a pthread_t is the address of the thread's `struct pthread`, which records the
// kernel tid. The offset of that field is found once in this process (same libc as targets on
// the same system) and checked against a thread whose tid is known before it is trusted.
std::optional<std::size_t> pthread_tid_offset();
std::optional<pid_t> tid_of_pthread(Memory& memory, std::uint64_t pthread_id);

}  // namespace pysample::attach
