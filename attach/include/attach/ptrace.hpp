#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <vector>

namespace pysample::attach {

// Holds every thread of a process under PTRACE_SEIZE for its lifetime (detaching them all in the
// destructor, also on exceptions) and stops/resumes them on demand with PTRACE_INTERRUPT.
//
// A thread in an uninterruptible wait (the parent of a vfork() child that has not exec'd yet, a
// process in disk or NFS I/O) stops only when the wait ends. A pause waits at most kStopWait for
// its threads; one that has not stopped by then is left running, its interrupt still queued, and
// is let go when it stops, so that it never waits on pysample, nor the threads stopped with it on
// it. Threads still traced when the suspender ends are detached when they stop, by later pauses
// or the next suspender's, and by the kernel when pysample exits.
class ThreadSuspender {
public:
    explicit ThreadSuspender(pid_t pid);
    ~ThreadSuspender();
    ThreadSuspender(const ThreadSuspender&) = delete;
    ThreadSuspender& operator=(const ThreadSuspender&) = delete;

    // Stops every thread (seizing new ones first). Returns false when the process has gone.
    bool pause();
    void resume();
    // Stops one thread of the process (seizing it first if new), leaving the others running.
    // Returns false when it has exited or cannot be traced.
    bool pause_thread(pid_t tid);
    void resume_thread(pid_t tid);
    // Serves the stops the held threads made on their own: a thread stopped to be given a signal
    // gets it and runs on, one that exited is reaped. pause() does so for every thread; a caller
    // that stops them one at a time with pause_thread() calls this once per sample, or threads it
    // leaves alone (idle ones) would wait for their signals, and exited ones stay zombies.
    void serve_stops();
    bool paused() const { return paused_; }
    // Exit status of the main thread if it was reaped here (the caller may be the target's parent).
    std::optional<int> reaped_exit_status() const { return exit_status_; }
    // How long the last pause() / pause_thread() lasted until its resume.
    std::chrono::nanoseconds last_pause_duration() const { return last_pause_; }
    // Threads that a pause or pause_thread() gave up waiting for, since the start.
    std::uint64_t stop_timeouts() const { return stop_timeouts_; }

    static constexpr std::chrono::milliseconds kStopWait{100};

private:
    struct Tracee {
        int pending_signal = 0;
        bool stopped = false;
        bool interrupt_queued = false;  // interrupted, but it did not stop within kStopWait
    };
    bool seize_new_threads();  // whether it seized any
    bool wait_for_interrupt_stop(pid_t tid, Tracee& tracee);
    void check_queued_stop(pid_t tid, Tracee& tracee);
    void forget(pid_t tid, int status);
    void detach_all() noexcept;

    pid_t pid_;
    std::map<pid_t, Tracee> tracees_;
    bool paused_ = false;
    std::optional<int> exit_status_;
    std::chrono::steady_clock::time_point pause_start_{};
    std::chrono::nanoseconds last_pause_{0};
    std::uint64_t stop_timeouts_ = 0;
};

// Pauses in the constructor, resumes in the destructor.
class ScopedPause {
public:
    explicit ScopedPause(ThreadSuspender* suspender) : suspender_(suspender) {
        ok_ = suspender_ == nullptr || suspender_->pause();
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
