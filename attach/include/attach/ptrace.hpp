#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <vector>

namespace pysample::attach {

// Why a thread could not be stopped for a pause.
struct StopFailures {
    // Did not stop within kStopWait, by the state it was in then: an uninterruptible wait (D: a
    // vfork() parent whose child has not exec'd yet, disk or NFS I/O), or runnable but given no CPU
    // (R: an overloaded machine, a CPU quota), or another state.
    std::uint64_t uninterruptible = 0;
    std::uint64_t waiting_for_cpu = 0;
    std::uint64_t other_state = 0;
    // PTRACE_SEIZE refused: another tracer (a debugger, another pysample) already holds the thread.
    std::uint64_t traced_elsewhere = 0;
    pid_t tracer = 0;  // the last such tracer seen
    std::uint64_t timeouts() const { return uninterruptible + waiting_for_cpu + other_state; }
};

// Stops the threads of a process for the length of one read, with PTRACE_SEIZE and
// PTRACE_INTERRUPT, and lets go of them with PTRACE_DETACH as soon as the read is done: between two
// pauses no thread is traced, so a signal sent to the target is delivered at once, as without
// pysample, and a debugger may attach. The destructor lets go of everything, also on exceptions,
// and the kernel does the same when pysample dies, even by SIGKILL.
//
// A thread in an uninterruptible wait (the parent of a vfork() child that has not exec'd yet, disk
// or NFS I/O), or runnable but given no CPU, stops only later. A pause waits at most kStopWait for
// its threads; one that has not stopped by then is read as it is (its Python stack cannot change
// while it does not run), and stays seized with its interrupt queued until it stops, when it is
// let go at once by serve_stops() (which its SIGCHLD should prompt) or the next pause. Threads
// still traced when the suspender ends are handed over to serve_stops() and to later suspenders.
class ThreadSuspender {
public:
    explicit ThreadSuspender(pid_t pid);
    ~ThreadSuspender();
    ThreadSuspender(const ThreadSuspender&) = delete;
    ThreadSuspender& operator=(const ThreadSuspender&) = delete;

    // Stops every thread, but those `leave(tid)` says to leave alone (threads that are waiting and
    // will not be read: stopping one only interrupts its wait). Returns false when the process has
    // gone. The first pause throws attach::Error (PermissionDenied) when the kernel lets no thread
    // be stopped for want of rights; threads another tracer holds are read without being stopped,
    // and counted.
    bool pause(const std::function<bool(pid_t)>& leave = {});
    // Lets go of every thread that pause() stopped.
    void resume();
    // Stops one thread of the process, leaving the others alone. Returns false when it has exited
    // or cannot be stopped now.
    bool pause_thread(pid_t tid);
    void resume_thread(pid_t tid);
    // Lets go of threads whose interrupt outlived their pause and that have stopped for it since,
    // and reaps the ones that exited meanwhile. Cheap when there are none: call it whenever
    // pysample receives SIGCHLD, which the kernel sends when a traced thread stops.
    void serve_stops();
    bool paused() const { return paused_; }
    // Exit status of the main thread if it was reaped here (the caller may be the target's parent).
    std::optional<int> reaped_exit_status() const { return exit_status_; }
    // How long the last pause() / pause_thread() lasted until its resume.
    std::chrono::nanoseconds last_pause_duration() const { return last_pause_; }
    // Threads that a pause could not stop, since the start, by cause.
    const StopFailures& stop_failures() const { return failures_; }
    // Threads traced right now (outside a pause: the ones whose interrupt is still queued).
    std::size_t traced_threads() const { return tracees_.size(); }

    static constexpr std::chrono::milliseconds kStopWait{100};

private:
    struct Tracee {
        int pending_signal = 0;
        bool stopped = false;
        bool interrupt_queued = false;  // interrupted, but it did not stop within kStopWait
    };
    enum class Seized { Now, Already, Failed };
    Seized seize(pid_t tid);
    bool seize_listed_threads(const std::function<bool(pid_t)>& leave);  // whether it seized any
    void interrupt_and_wait();
    bool wait_for_interrupt_stop(pid_t tid, Tracee& tracee);
    void count_stop_timeout(pid_t tid);
    void check_queued_stop(pid_t tid, Tracee& tracee);
    void release(pid_t tid);
    void forget(pid_t tid, int status);
    void release_all() noexcept;

    pid_t pid_;
    std::map<pid_t, Tracee> tracees_;
    bool paused_ = false;
    std::optional<int> exit_status_;
    std::chrono::steady_clock::time_point pause_start_{};
    std::chrono::nanoseconds last_pause_{0};
    StopFailures failures_;
    int last_seize_error_ = 0;
    bool paused_before_ = false;
    std::vector<pid_t> interrupted_;
};

// Lets go of the threads that ended suspenders left traced once they stop; see serve_stops().
void serve_leftover_stops();

// Pauses in the constructor, resumes in the destructor.
class ScopedPause {
public:
    explicit ScopedPause(ThreadSuspender* suspender, const std::function<bool(pid_t)>& leave = {})
        : suspender_(suspender) {
        ok_ = suspender_ == nullptr || suspender_->pause(leave);
    }
    ~ScopedPause() {
        if (suspender_ != nullptr && suspender_->paused()) suspender_->resume();
    }
    ScopedPause(const ScopedPause&) = delete;
    ScopedPause& operator=(const ScopedPause&) = delete;
    bool ok() const { return ok_; }

private:
    ThreadSuspender* suspender_;
    bool ok_;
};

}  // namespace pysample::attach
