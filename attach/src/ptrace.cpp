#include "attach/ptrace.hpp"

#include <spdlog/spdlog.h>
#include <sys/ptrace.h>
#include <sys/time.h>
#include <sys/wait.h>

#include <cerrno>
#include <csignal>
#include <cstring>
#include <mutex>

#include "attach/error.hpp"
#include "attach/threads.hpp"

namespace pysample::attach {
namespace {

bool is_interrupt_stop(int status) { return WIFSTOPPED(status) && (status >> 16) == PTRACE_EVENT_STOP; }

// The signal a stopped thread was about to take, to hand back when it resumes: none for a ptrace
// event or trap stop (SIGTRAP is ptrace's own).
int signal_to_pass_on(int status) { return (status >> 16) == 0 && WSTOPSIG(status) != SIGTRAP ? WSTOPSIG(status) : 0; }

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

// Threads of ended suspenders that were still running, an interrupt queued: detached once stopped.
std::vector<pid_t>& leftover_tracees() {
    static std::vector<pid_t> tids;
    return tids;
}

void detach_stopped_leftovers() {
    auto& tids = leftover_tracees();
    std::erase_if(tids, [](pid_t tid) {
        int status = 0;
        pid_t got = ::waitpid(tid, &status, WNOHANG | __WALL);
        if (got == 0) return false;
        if (got < 0 || WIFEXITED(status) || WIFSIGNALED(status)) return true;
        int sig = signal_to_pass_on(status);
        if (::ptrace(PTRACE_DETACH, tid, nullptr, reinterpret_cast<void*>(static_cast<long>(sig))) == 0) return true;
        // Stopped for a ptrace event other than the interrupt: let it on towards the interrupt's stop.
        ::ptrace(PTRACE_CONT, tid, nullptr, nullptr);
        return false;
    });
}

}  // namespace

ThreadSuspender::ThreadSuspender(pid_t pid) : pid_(pid) {
    seize_new_threads();
    if (tracees_.empty()) {
        if (errno == EPERM) throw Error(ErrorKind::PermissionDenied, permission_hint(pid));
        throw Error(ErrorKind::NoSuchProcess,
                    "cannot ptrace process " + std::to_string(pid) + ": " + std::strerror(errno));
    }
}

ThreadSuspender::~ThreadSuspender() { detach_all(); }

bool ThreadSuspender::seize_new_threads() {
    bool seized = false;
    for (pid_t tid : list_threads(pid_)) {
        if (tracees_.count(tid) != 0) continue;
        if (::ptrace(PTRACE_SEIZE, tid, nullptr, nullptr) == 0) {
            tracees_.emplace(tid, Tracee{});
            seized = true;
        } else {
            spdlog::debug("PTRACE_SEIZE of thread {} of process {} failed: {}", tid, pid_, std::strerror(errno));
        }
    }
    return seized;
}

void ThreadSuspender::forget(pid_t tid, int status) {
    if (tid == pid_ && (WIFEXITED(status) || WIFSIGNALED(status))) exit_status_ = status;
    tracees_.erase(tid);
}

// After PTRACE_INTERRUPT a thread may first report a signal-delivery stop; that signal is handed
// back on resume and we keep waiting for the interrupt's own stop. Once the pause's deadline is
// over, a thread that has not stopped is left running with its interrupt queued.
bool ThreadSuspender::wait_for_interrupt_stop(pid_t tid, Tracee& tracee) {
    for (;;) {
        int status = 0;
        pid_t got = ::waitpid(tid, &status, __WALL | (stop_wait_over() ? WNOHANG : 0));
        if (got == 0) {
            tracee.interrupt_queued = true;
            ++stop_timeouts_;
            spdlog::debug("thread {} of process {} did not stop within {} ms (an uninterruptible wait?); left running",
                          tid, pid_, kStopWait.count());
            return false;
        }
        if (got < 0) {
            if (errno == EINTR) continue;
            return false;
        }
        if (WIFEXITED(status) || WIFSIGNALED(status)) {
            forget(tid, status);
            return false;
        }
        if (is_interrupt_stop(status)) {
            tracee.stopped = true;
            tracee.interrupt_queued = false;
            return true;
        }
        if (WIFSTOPPED(status)) {
            if (int sig = signal_to_pass_on(status); sig != 0) tracee.pending_signal = sig;
            // Let the thread take its signal (or finish the ptrace event); the interrupt is still queued.
            ::ptrace(PTRACE_CONT, tid, nullptr, reinterpret_cast<void*>(static_cast<long>(tracee.pending_signal)));
            tracee.pending_signal = 0;
        }
    }
}

// A thread whose interrupt outlived the pause that sent it: stopped for it now, or still on its way.
void ThreadSuspender::check_queued_stop(pid_t tid, Tracee& tracee) {
    int status = 0;
    if (::waitpid(tid, &status, WNOHANG | __WALL) != tid) return;
    if (WIFEXITED(status) || WIFSIGNALED(status)) {
        forget(tid, status);
    } else if (is_interrupt_stop(status)) {
        tracee.stopped = true;
        tracee.interrupt_queued = false;
    } else if (WIFSTOPPED(status)) {
        int sig = signal_to_pass_on(status);
        ::ptrace(PTRACE_CONT, tid, nullptr, reinterpret_cast<void*>(static_cast<long>(sig)));
    }
}

// The pause is timed from the first interrupt: listing and seizing new threads stops nobody.
// A thread started after the listing, before the thread starting it stopped, would run on while
// the others are read: the threads are listed again until no new one appears (a stopped thread
// starts none; a few rounds are enough for threads that start threads as they start).
bool ThreadSuspender::pause() {
    constexpr int kMaxRounds = 8;
    detach_stopped_leftovers();
    seize_new_threads();
    pause_start_ = std::chrono::steady_clock::now();
    StopWaitDeadline deadline(kStopWait);
    std::vector<pid_t> interrupted;
    for (int round = 0; round < kMaxRounds; ++round) {
        interrupted.clear();
        for (auto it = tracees_.begin(); it != tracees_.end();) {
            pid_t tid = it->first;
            Tracee& tracee = it->second;
            ++it;  // check_queued_stop() forgets a thread that exited
            // One still in the wait that kept it from stopping before is not waited for again.
            if (tracee.interrupt_queued) {
                check_queued_stop(tid, tracee);
                continue;
            }
            if (!tracee.stopped && ::ptrace(PTRACE_INTERRUPT, tid, nullptr, nullptr) == 0) interrupted.push_back(tid);
        }
        for (pid_t tid : interrupted) {
            auto it = tracees_.find(tid);
            if (it != tracees_.end()) wait_for_interrupt_stop(tid, it->second);
        }
        if (!seize_new_threads()) break;
    }
    paused_ = true;
    return !tracees_.empty();
}

void ThreadSuspender::resume() {
    for (auto it = tracees_.begin(); it != tracees_.end();) {
        pid_t tid = it->first;
        ++it;
        auto found = tracees_.find(tid);
        if (found->second.interrupt_queued) check_queued_stop(tid, found->second);
        found = tracees_.find(tid);  // one that exited meanwhile is gone
        if (found == tracees_.end() || !found->second.stopped) continue;
        Tracee& tracee = found->second;
        ::ptrace(PTRACE_CONT, tid, nullptr, reinterpret_cast<void*>(static_cast<long>(tracee.pending_signal)));
        tracee.stopped = false;
        tracee.pending_signal = 0;
    }
    paused_ = false;
    last_pause_ = std::chrono::steady_clock::now() - pause_start_;
}

bool ThreadSuspender::pause_thread(pid_t tid) {
    auto it = tracees_.find(tid);
    if (it == tracees_.end()) {
        if (::ptrace(PTRACE_SEIZE, tid, nullptr, nullptr) != 0) return false;
        it = tracees_.emplace(tid, Tracee{}).first;
    }
    pause_start_ = std::chrono::steady_clock::now();
    if (it->second.interrupt_queued) {
        check_queued_stop(tid, it->second);
        auto now = tracees_.find(tid);
        return now != tracees_.end() && now->second.stopped;
    }
    if (::ptrace(PTRACE_INTERRUPT, tid, nullptr, nullptr) != 0) return false;
    StopWaitDeadline deadline(kStopWait);
    return wait_for_interrupt_stop(tid, it->second);
}

void ThreadSuspender::resume_thread(pid_t tid) {
    auto it = tracees_.find(tid);
    if (it == tracees_.end() || !it->second.stopped) return;
    ::ptrace(PTRACE_CONT, tid, nullptr, reinterpret_cast<void*>(static_cast<long>(it->second.pending_signal)));
    it->second.stopped = false;
    it->second.pending_signal = 0;
    last_pause_ = std::chrono::steady_clock::now() - pause_start_;
}

void ThreadSuspender::serve_stops() {
    detach_stopped_leftovers();
    for (auto it = tracees_.begin(); it != tracees_.end();) {
        pid_t tid = it->first;
        Tracee& tracee = it->second;
        ++it;
        int status = 0;
        if (tracee.stopped || ::waitpid(tid, &status, WNOHANG | __WALL) != tid) continue;
        if (WIFEXITED(status) || WIFSIGNALED(status)) {
            forget(tid, status);
        } else if (WIFSTOPPED(status) && (status >> 16) == PTRACE_EVENT_STOP && WSTOPSIG(status) != SIGTRAP) {
            // A group-stop (the process got SIGSTOP or the like): the thread stays stopped with it.
            ::ptrace(PTRACE_LISTEN, tid, nullptr, nullptr);
        } else if (WIFSTOPPED(status)) {
            if (is_interrupt_stop(status)) tracee.interrupt_queued = false;  // a late stop for an earlier interrupt
            int sig = signal_to_pass_on(status);
            ::ptrace(PTRACE_CONT, tid, nullptr, reinterpret_cast<void*>(static_cast<long>(sig)));
        }
    }
}

void ThreadSuspender::detach_all() noexcept {
    std::vector<pid_t> tids;
    for (const auto& entry : tracees_) tids.push_back(entry.first);
    StopWaitDeadline deadline(kStopWait);
    for (pid_t tid : tids) {
        auto it = tracees_.find(tid);
        if (it == tracees_.end()) continue;
        // PTRACE_DETACH needs the tracee stopped; interrupt a running one first.
        if (it->second.interrupt_queued) {
            check_queued_stop(tid, it->second);
        } else if (!it->second.stopped && ::ptrace(PTRACE_INTERRUPT, tid, nullptr, nullptr) == 0) {
            wait_for_interrupt_stop(tid, it->second);
        }
        it = tracees_.find(tid);
        if (it == tracees_.end()) continue;  // exited
        if (!it->second.stopped) {
            if (it->second.interrupt_queued) leftover_tracees().push_back(tid);
            continue;
        }
        ::ptrace(PTRACE_DETACH, tid, nullptr, reinterpret_cast<void*>(static_cast<long>(it->second.pending_signal)));
    }
    tracees_.clear();
    paused_ = false;
    detach_stopped_leftovers();
}

}  // namespace pysample::attach
