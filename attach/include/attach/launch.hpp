#pragma once

#include <sys/types.h>

#include <optional>
#include <string>
#include <vector>

namespace pysample::attach {

// A command started by us. Waiting for exec to succeed is part of spawning, so a missing program is
// reported as an error here rather than as a child exiting with 127.
class ChildProcess {
public:
    explicit ChildProcess(const std::vector<std::string>& argv);
    ~ChildProcess();
    ChildProcess(const ChildProcess&) = delete;
    ChildProcess& operator=(const ChildProcess&) = delete;

    pid_t pid() const { return pid_; }
    // Non-blocking; returns the wait status once the child has exited.
    std::optional<int> poll();
    int wait();
    // Records an exit status reaped elsewhere (a tracer of the child also collects its exit).
    void set_reaped(int wait_status) { status_ = wait_status; }
    void send_signal(int sig) const;
    // Shell-style exit code: the exit status, or 128 + signal number.
    static int exit_code(int wait_status);
    // "exited with status 1", "was killed by signal 9 (Killed)".
    static std::string describe_status(int wait_status);

private:
    pid_t pid_ = -1;
    std::optional<int> status_;
};

}  // namespace pysample::attach
