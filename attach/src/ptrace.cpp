#include "attach/ptrace.hpp"

#include <spdlog/spdlog.h>
#include <sys/ptrace.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstring>
#include <mutex>

#include "attach/error.hpp"
#include "attach/threads.hpp"

namespace pysample::attach {
namespace {

// The signal a thread stopped in a signal-delivery stop was about to take, to hand back when it is
// let go; none for a ptrace event stop. A seized thread gets no SIGTRAP of ptrace's own (exec
// reports none without PTRACE_O_TRACEEXEC), so every signal-delivery stop is a real signal.
int signal_to_pass_on(int status) { return WIFSTOPPED(status) && (status >> 16) == 0 ? WSTOPSIG(status) : 0; }

bool has_exited(int status) { return WIFEXITED(status) || WIFSIGNALED(status); }

volatile std::sig_atomic_t g_stop_wait_over = 0;
void on_stop_wait_alarm(int) { g_stop_wait_over = 1; }

timeval to_timeval(std::chrono::microseconds time) {
    return timeval{static_cast<time_t>(time.count() / 1'000'000), static_cast<suseconds_t>(time.count() % 1'000'000)};
}

// Bounds the blocking waitpid() calls of a pause: SIGALRM, whose handler does not restart system
// calls, ends a wait with EINTR once the time is over, and again every millisecond after it, so
// that a wait entered right after the first alarm ends too. pysample samples from one thread,
// which the process-directed signal therefore reaches.
class StopWaitDeadline {
public:
    explicit StopWaitDeadline(std::chrono::microseconds budget) {
        static std::once_flag installed;
        std::call_once(installed, [] {
            struct sigaction action {};
            action.sa_handler = on_stop_wait_alarm;
            sigemptyset(&action.sa_mask);
            action.sa_flags = 0;
            ::sigaction(SIGALRM, &action, nullptr);
        });
        g_stop_wait_over = 0;
        itimerval timer{to_timeval(std::chrono::milliseconds(1)), to_timeval(budget)};
        ::setitimer(ITIMER_REAL, &timer, nullptr);
    }
    ~StopWaitDeadline() {
        itimerval off{};
        ::setitimer(ITIMER_REAL, &off, nullptr);
        g_stop_wait_over = 0;  // an alarm already due is delivered on the return from setitimer()
    }
    StopWaitDeadline(const StopWaitDeadline&) = delete;
    StopWaitDeadline& operator=(const StopWaitDeadline&) = delete;
};

bool stop_wait_over() { return g_stop_wait_over != 0; }

bool detach(pid_t tid, int signal) {
    return ::ptrace(PTRACE_DETACH, tid, nullptr, reinterpret_cast<void*>(static_cast<long>(signal))) == 0;
}

// Threads of ended suspenders that were still running, an interrupt queued: let go once stopped.
std::vector<pid_t>& leftover_tracees() {
    static std::vector<pid_t> tids;
    return tids;
}

}  // namespace

void serve_leftover_stops() {
    std::erase_if(leftover_tracees(), [](pid_t tid) {
        int status = 0;
        pid_t got = ::waitpid(tid, &status, WNOHANG | __WALL);
        if (got == 0) return false;
        if (got < 0 || has_exited(status)) return true;
        return detach(tid, signal_to_pass_on(status)) || errno != ESRCH;
    });
}

ThreadSuspender::ThreadSuspender(pid_t pid) : pid_(pid) {}

ThreadSuspender::~ThreadSuspender() { release_all(); }

// EPERM for a thread that another process already traces is not a matter of rights: that thread
// is read without being stopped, and counted.
ThreadSuspender::Seized ThreadSuspender::seize(pid_t tid) {
    if (tracees_.count(tid) != 0) return Seized::Already;
    if (::ptrace(PTRACE_SEIZE, tid, nullptr, nullptr) == 0) {
        tracees_.emplace(tid, Tracee{});
        return Seized::Now;
    }
    int error = errno;
    last_seize_error_ = error;
    if (error == EPERM) {
        pid_t tracer = tracer_of(pid_, tid);
        if (tracer > 0 && tracer != ::getpid()) {
            ++failures_.traced_elsewhere;
            failures_.tracer = tracer;
        }
    }
    spdlog::debug("PTRACE_SEIZE of thread {} of process {} failed: {}", tid, pid_, std::strerror(error));
    errno = error;
    return Seized::Failed;
}

bool ThreadSuspender::seize_listed_threads(const std::function<bool(pid_t)>& leave) {
    bool seized = false;
    for (pid_t tid : list_threads(pid_)) {
        if (!leave || !leave(tid)) seized = seize(tid) == Seized::Now || seized;
    }
    return seized;
}

void ThreadSuspender::forget(pid_t tid, int status) {
    if (tid == pid_ && has_exited(status)) exit_status_ = status;
    tracees_.erase(tid);
}

void ThreadSuspender::count_stop_timeout(pid_t tid) {
    char state = read_thread_state(pid_, tid);
    if (state == 'D') {
        ++failures_.uninterruptible;
    } else if (state == 'R') {
        ++failures_.waiting_for_cpu;
    } else {
        ++failures_.other_state;
    }
    spdlog::debug("thread {} of process {} did not stop within {} ms (state {}); read as it is", tid, pid_,
                  kStopWait.count(), state);
}

// Any ptrace-stop will do: the interrupt's own, a group-stop, or a signal-delivery stop, whose
// signal is handed back when the thread is let go. Once the pause's deadline is over, a thread
// that has not stopped is left as it is, its interrupt queued.
bool ThreadSuspender::wait_for_interrupt_stop(pid_t tid, Tracee& tracee) {
    for (;;) {
        int status = 0;
        pid_t got = ::waitpid(tid, &status, __WALL | (stop_wait_over() ? WNOHANG : 0));
        if (got == 0) {
            tracee.interrupt_queued = true;
            count_stop_timeout(tid);
            return false;
        }
        if (got < 0) {
            if (errno == EINTR) continue;
            forget(tid, 0);
            return false;
        }
        if (has_exited(status)) {
            forget(tid, status);
            return false;
        }
        if (WIFSTOPPED(status)) {
            tracee.stopped = true;
            tracee.interrupt_queued = false;
            tracee.pending_signal = signal_to_pass_on(status);
            return true;
        }
    }
}

// A thread whose interrupt outlived the pause that sent it: stopped for it now, exited, or still
// on its way.
void ThreadSuspender::check_queued_stop(pid_t tid, Tracee& tracee) {
    int status = 0;
    pid_t got = ::waitpid(tid, &status, WNOHANG | __WALL);
    if (got == 0) return;
    if (got < 0 || has_exited(status)) {
        forget(tid, got < 0 ? 0 : status);
    } else if (WIFSTOPPED(status)) {
        tracee.stopped = true;
        tracee.interrupt_queued = false;
        tracee.pending_signal = signal_to_pass_on(status);
    }
}

// Detaching from a stop also drops an interrupt still queued. A thread killed while stopped
// (SIGKILL ends a ptrace-stop) refuses; it is reaped when its exit is reported.
void ThreadSuspender::release(pid_t tid) {
    auto it = tracees_.find(tid);
    if (it == tracees_.end()) return;
    if (detach(tid, it->second.pending_signal) || errno != ESRCH) {
        tracees_.erase(it);
        return;
    }
    it->second = Tracee{.pending_signal = 0, .stopped = false, .interrupt_queued = true};
}

// The pause is timed from the first interrupt: listing and seizing threads stops nobody. A thread
// started after the listing, before the thread starting it stopped, would run on while the others
// are read: the threads are listed again until no new one appears (a stopped thread starts none;
// a few rounds are enough for threads that start threads as they start).
bool ThreadSuspender::pause(const std::function<bool(pid_t)>& leave) {
    constexpr int kMaxRounds = 8;
    serve_stops();
    seize_listed_threads(leave);
    pause_start_ = std::chrono::steady_clock::now();
    StopWaitDeadline deadline(kStopWait);
    for (int round = 0; round < kMaxRounds; ++round) {
        interrupt_and_wait();
        if (round + 1 == kMaxRounds || !seize_listed_threads(leave)) break;
    }
    paused_ = true;
    bool alive = !tracees_.empty() || !list_threads(pid_).empty();
    // Refused by the kernel for want of rights (not for a tracer already there): said at once, on
    // the first pause, rather than reading every sample without stopping the threads.
    if (!paused_before_ && alive && tracees_.empty() && last_seize_error_ == EPERM && failures_.traced_elsewhere == 0) {
        paused_ = false;
        throw Error(ErrorKind::PermissionDenied, permission_hint(pid_));
    }
    paused_before_ = true;
    return alive;
}

// Interrupts every seized thread that is neither stopped nor already interrupted, then waits.
void ThreadSuspender::interrupt_and_wait() {
    interrupted_.clear();
    for (auto it = tracees_.begin(); it != tracees_.end();) {
        pid_t tid = it->first;
        Tracee& tracee = it->second;
        ++it;  // check_queued_stop() forgets a thread that exited
        // One still in the wait that kept it from stopping before is not waited for again.
        if (tracee.interrupt_queued) {
            check_queued_stop(tid, tracee);
        } else if (!tracee.stopped) {
            if (::ptrace(PTRACE_INTERRUPT, tid, nullptr, nullptr) == 0) {
                interrupted_.push_back(tid);
            } else {
                tracee.interrupt_queued = true;  // exiting: its exit is reaped when reported
            }
        }
    }
    for (pid_t tid : interrupted_) {
        auto it = tracees_.find(tid);
        if (it != tracees_.end()) wait_for_interrupt_stop(tid, it->second);
    }
}

void ThreadSuspender::resume() {
    for (auto it = tracees_.begin(); it != tracees_.end();) {
        pid_t tid = it->first;
        Tracee& tracee = it->second;
        ++it;
        if (tracee.interrupt_queued) check_queued_stop(tid, tracee);
        auto found = tracees_.find(tid);  // one that exited meanwhile is gone
        if (found != tracees_.end() && found->second.stopped) release(tid);
    }
    paused_ = false;
    last_pause_ = std::chrono::steady_clock::now() - pause_start_;
}

bool ThreadSuspender::pause_thread(pid_t tid) {
    serve_stops();
    // Never another process's thread, whatever id the caller was given.
    if (tracees_.count(tid) == 0 && !is_thread_of(pid_, tid)) return false;
    if (seize(tid) == Seized::Failed) {
        if (!paused_before_ && last_seize_error_ == EPERM && failures_.traced_elsewhere == 0) {
            throw Error(ErrorKind::PermissionDenied, permission_hint(pid_));
        }
        return false;
    }
    paused_before_ = true;
    Tracee& tracee = tracees_.at(tid);
    pause_start_ = std::chrono::steady_clock::now();
    if (tracee.interrupt_queued) {
        check_queued_stop(tid, tracee);
        auto now = tracees_.find(tid);
        return now != tracees_.end() && now->second.stopped;
    }
    if (::ptrace(PTRACE_INTERRUPT, tid, nullptr, nullptr) != 0) {
        tracee.interrupt_queued = true;
        return false;
    }
    StopWaitDeadline deadline(kStopWait);
    return wait_for_interrupt_stop(tid, tracee);
}

void ThreadSuspender::resume_thread(pid_t tid) {
    auto it = tracees_.find(tid);
    if (it == tracees_.end() || !it->second.stopped) return;
    release(tid);
    last_pause_ = std::chrono::steady_clock::now() - pause_start_;
}

void ThreadSuspender::serve_stops() {
    serve_leftover_stops();
    if (paused_ || tracees_.empty()) return;
    for (auto it = tracees_.begin(); it != tracees_.end();) {
        pid_t tid = it->first;
        Tracee& tracee = it->second;
        ++it;
        if (tracee.interrupt_queued) check_queued_stop(tid, tracee);
        auto found = tracees_.find(tid);
        if (found != tracees_.end() && found->second.stopped) release(tid);
    }
}

void ThreadSuspender::release_all() noexcept {
    paused_ = false;
    serve_stops();
    for (auto& [tid, tracee] : tracees_) {
        // Cannot happen after a whole pause; an exception in the middle of one might leave it.
        if (!tracee.stopped && !tracee.interrupt_queued) ::ptrace(PTRACE_INTERRUPT, tid, nullptr, nullptr);
        leftover_tracees().push_back(tid);
    }
    tracees_.clear();
}

}  // namespace pysample::attach
