#include "attach/ptrace.hpp"

#include <spdlog/spdlog.h>
#include <sys/ptrace.h>
#include <sys/wait.h>

#include <cerrno>
#include <cstring>

#include "attach/error.hpp"
#include "attach/threads.hpp"

namespace pysample::attach {
namespace {

bool is_interrupt_stop(int status) { return WIFSTOPPED(status) && (status >> 16) == PTRACE_EVENT_STOP; }

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
// back on resume and we keep waiting for the interrupt's own stop.
bool ThreadSuspender::wait_for_interrupt_stop(pid_t tid, Tracee& tracee) {
    for (;;) {
        int status = 0;
        pid_t got = ::waitpid(tid, &status, __WALL);
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
            return true;
        }
        if (WIFSTOPPED(status)) {
            int event = status >> 16;
            int sig = WSTOPSIG(status);
            if (event == 0 && sig != SIGTRAP) tracee.pending_signal = sig;
            // Let the thread take its signal (or finish the ptrace event); the interrupt is still queued.
            ::ptrace(PTRACE_CONT, tid, nullptr, reinterpret_cast<void*>(static_cast<long>(tracee.pending_signal)));
            tracee.pending_signal = 0;
        }
    }
}

// The pause is timed from the first interrupt: listing and seizing new threads stops nobody.
// A thread started after the listing, before the thread starting it stopped, would run on while
// the others are read: the threads are listed again until no new one appears (a stopped thread
// starts none; a few rounds are enough for threads that start threads as they start).
bool ThreadSuspender::pause() {
    constexpr int kMaxRounds = 8;
    seize_new_threads();
    pause_start_ = std::chrono::steady_clock::now();
    std::vector<pid_t> interrupted;
    for (int round = 0; round < kMaxRounds; ++round) {
        interrupted.clear();
        for (auto& [tid, tracee] : tracees_) {
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
    for (auto& [tid, tracee] : tracees_) {
        if (!tracee.stopped) continue;
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
    if (::ptrace(PTRACE_INTERRUPT, tid, nullptr, nullptr) != 0) return false;
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
            int sig = (status >> 16) == 0 && WSTOPSIG(status) != SIGTRAP ? WSTOPSIG(status) : 0;
            ::ptrace(PTRACE_CONT, tid, nullptr, reinterpret_cast<void*>(static_cast<long>(sig)));
        }
    }
}

void ThreadSuspender::detach_all() noexcept {
    std::vector<pid_t> tids;
    for (const auto& entry : tracees_) tids.push_back(entry.first);
    for (pid_t tid : tids) {
        auto it = tracees_.find(tid);
        if (it == tracees_.end()) continue;
        // PTRACE_DETACH needs the tracee stopped; interrupt a running one first.
        if (!it->second.stopped && ::ptrace(PTRACE_INTERRUPT, tid, nullptr, nullptr) == 0 &&
            !wait_for_interrupt_stop(tid, it->second)) {
            continue;
        }
        ::ptrace(PTRACE_DETACH, tid, nullptr, reinterpret_cast<void*>(static_cast<long>(it->second.pending_signal)));
    }
    tracees_.clear();
    paused_ = false;
}

}  // namespace pysample::attach
