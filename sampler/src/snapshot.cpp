#include "snapshot.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>

namespace pysample::sampler {

Snapshotter::Snapshotter(PythonProcess& process, bool blocking, NativeMode native)
    : process_(process),
      pages_(process.memory()),
      codes_(pages_, process.code_layout(), process.code_type_address()),
      walker_(process.layout(), process.version().major, process.version().minor, pages_, codes_),
      gil_(process),
      states_(process.pid()),
      python_names_(process) {
    if (native != NativeMode::Off) native_ = std::make_unique<NativeStacks>(process, native == NativeMode::All);
    if (blocking || native_) suspender_ = std::make_unique<attach::ThreadSuspender>(process.pid());
    stop_each_thread_ = native_ && !blocking;
}

// The name a Python program gave a thread (threading.Thread(name=...)) wins over the kernel's:
// it is what the program calls it, and is not cut to 15 bytes. Read outside any pause.
void Snapshotter::name_python_threads(std::uint64_t interp, std::vector<ThreadSnapshot>& snapshots) {
    idents_.clear();
    for (std::size_t i = 0; i < snapshots.size() && i < threads_.size(); ++i) idents_.push_back(threads_[i].thread_id);
    python_names_.update(interp, idents_);
    for (std::size_t i = 0; i < idents_.size(); ++i) {
        if (const auto* name = python_names_.find(idents_[i])) snapshots[i].name = *name;
    }
}

const std::string& Snapshotter::thread_name(pid_t tid) {
    auto it = names_.find(tid);
    if (it == names_.end()) {
        auto status = attach::read_thread_status(process_.pid(), tid);
        it = names_.emplace(tid, status ? status->name : std::string()).first;
    }
    return it->second;
}

namespace {

// Two walks (innermost first) agree when, from the root up to the depth of the shorter one, they
// saw the same code in every frame and the same line in every frame that is a caller in both.
// Above that the stacks may differ: the thread runs on, and a leaf called very often (a sort key,
// deep recursion) comes and goes between any two reads. A caller read before a call or return and
// its callee read after it shows up as a caller line that the other walk contradicts.
bool same_callers(const std::vector<PyFrame>& a, const std::vector<PyFrame>& b) {
    std::size_t shorter = std::min(a.size(), b.size());
    std::size_t a_root = a.size() - 1;
    std::size_t b_root = b.size() - 1;
    for (std::size_t depth = 0; depth < shorter; ++depth) {
        const PyFrame& x = a[a_root - depth];
        const PyFrame& y = b[b_root - depth];
        bool caller_in_both = depth + 1 < shorter;
        if (x.code != y.code || (caller_in_both && x.line != y.line)) return false;
    }
    return true;
}

constexpr int kMaxWalks = 4;

}  // namespace

WalkResult Snapshotter::walk(ThreadStateRef thread, std::vector<PyFrame>& frames) {
    pages_.clear();
    if (auto refreshed = walker_.refresh_top_frame(thread); refreshed != WalkResult::Ok) return refreshed;
    return walker_.frames(thread, frames);
}

// Without stopping the thread, a walk can combine a caller read before a call or return with a
// callee read after it. Reading the stack again and keeping it only when both reads agree rejects
// such mixtures instead of reporting call chains that never existed.
WalkResult Snapshotter::walk_consistent(ThreadStateRef thread, std::vector<PyFrame>& frames) {
    WalkResult result = walk(thread, previous_walk_);
    for (int attempt = 1; attempt < kMaxWalks; ++attempt) {
        WalkResult again = walk(thread, frames);
        if (result == WalkResult::Ok && again == WalkResult::Ok &&
            (frames.empty() || previous_walk_.empty() ? frames.size() == previous_walk_.size()
                                                      : same_callers(previous_walk_, frames))) {
            return WalkResult::Ok;
        }
        result = again;
        std::swap(previous_walk_, frames);
    }
    frames.clear();
    return result == WalkResult::Ok ? WalkResult::Torn : result;
}

// Before 3.11 a thread state records only the pthread id; the kernel tid is found through it and
// trusted only when it names a live thread of the target.
pid_t Snapshotter::kernel_tid(const ThreadStateRef& thread, const std::map<pid_t, char>& live) {
    if (thread.native_id != 0) return static_cast<pid_t>(thread.native_id);
    // A pthread_t is reused only after its thread exited, so a cached tid that is still alive is right.
    if (auto cached = tids_by_pthread_.find(thread.thread_id);
        cached != tids_by_pthread_.end() && live.count(cached->second) != 0) {
        return cached->second;
    }
    auto tid = attach::tid_of_pthread(pages_, thread.thread_id);
    if (!tid || live.count(*tid) == 0) return 0;
    tids_by_pthread_[thread.thread_id] = *tid;
    return *tid;
}

// The threads run again: unwinding and symbolizing their copied stacks costs them nothing.
void Snapshotter::merge_native_stacks(std::vector<ThreadSnapshot>& snapshots) {
    for (std::size_t i = 0; i < snapshots.size(); ++i) {
        auto& snap = snapshots[i];
        if (!snap.walked || snap.result != WalkResult::Ok) continue;
        snap.native = native_->merge(captures_[i], eval_calls_[i], snap.frames);
        // The scheduler state was read before the thread stopped: it may have gone to wait since.
        if (snap.native == MergeResult::Merged && waits_in_native_call(captures_[i], snap.frames)) snap.idle = true;
    }
}

// Scheduler states are read before the threads are stopped: a stopped thread always looks idle.
Snapshotter::Outcome Snapshotter::take(std::vector<ThreadSnapshot>& out, bool walk_idle) {
    out.clear();
    if (native_) native_->begin_sample();
    auto states = states_.read_all();
    // An exited process stays listed, as zombie threads, until its parent reaps it.
    bool all_exited = std::all_of(states.begin(), states.end(),
                                  [](const auto& entry) { return entry.second == 'Z' || entry.second == 'X'; });
    if (all_exited) return Outcome::ProcessGone;
    std::map<pid_t, char> state_of(states.begin(), states.end());

    bool any_failed = false;
    std::uint64_t interp = 0;
    {
        // Native mode alone stops one thread at a time, while its own stack is read.
        attach::ScopedPause pause(stop_each_thread_ ? nullptr : suspender_.get());
        if (!pause.ok()) return Outcome::ProcessGone;
        pages_.clear();
        interp = process_.interpreter_head(pages_);
        if (interp == 0) return Outcome::Ok;  // runtime not initialised yet, or finalised

        if (auto result = walker_.threads(interp, threads_); result != WalkResult::Ok) {
            ++stats_.rejected;
            ++stats_.reasons[result];
            spdlog::debug("pid {}: thread list unreadable: {}", process_.pid(), describe(result));
            return Outcome::Failed;
        }
        std::uint64_t gil_holder = gil_.holder(pages_, interp);
        if (native_) {
            captures_.resize(std::max(captures_.size(), threads_.size()));
            eval_calls_.resize(std::max(eval_calls_.size(), threads_.size()));
        }
        for (std::size_t i = 0; i < threads_.size(); ++i) {
            ThreadSnapshot snap;
            auto tid = kernel_tid(threads_[i], state_of);
            snap.id = tid != 0 ? static_cast<std::uint64_t>(tid) : threads_[i].thread_id;
            auto state = state_of.find(tid);
            snap.idle = tid != 0 && (state == state_of.end() || state->second != 'R');
            if (state != state_of.end()) snap.name = thread_name(tid);
            snap.holds_gil = gil_holder != 0 && threads_[i].address == gil_holder;
            if (!snap.idle || walk_idle || snap.holds_gil) {
                ++stats_.thread_stacks;
                snap.walked = true;
                snap.result = read_thread(i, tid, snap.frames);
                if (snap.result != WalkResult::Ok) {
                    any_failed = true;
                    ++stats_.rejected;
                    ++stats_.reasons[snap.result];
                    snap.frames.clear();
                }
            }
            out.push_back(std::move(snap));
        }
        if (inspect_) inspect_(out);
    }
    if (suspender_ && !stop_each_thread_) count_pause(suspender_->last_pause_duration());
    name_python_threads(interp, out);
    if (native_) merge_native_stacks(out);
    return any_failed ? Outcome::Failed : Outcome::Ok;
}

WalkResult Snapshotter::read_thread(std::size_t index, pid_t tid, std::vector<PyFrame>& frames) {
    const auto& thread = threads_[index];
    if (!native_) return suspender_ ? walker_.frames(thread, frames) : walk_consistent(thread, frames);
    captures_[index].ok = false;
    if (!stop_each_thread_) {
        if (tid != 0) native_->capture(tid, captures_[index]);
        return walker_.frames(thread, frames, &eval_calls_[index]);
    }
    if (tid == 0 || !suspender_->pause_thread(tid)) return walk_consistent(thread, frames);
    // What was read before the thread stopped may be stale: its frame pointer and cached pages.
    pages_.clear();
    ThreadStateRef stopped = thread;
    WalkResult result = walker_.refresh_top_frame(stopped);
    if (result == WalkResult::Ok) result = walker_.frames(stopped, frames, &eval_calls_[index]);
    native_->capture(tid, captures_[index]);
    suspender_->resume_thread(tid);
    count_pause(suspender_->last_pause_duration());
    return result;
}

void Snapshotter::count_pause(std::chrono::nanoseconds duration) {
    pause_total_ += duration;
    ++pauses_;
}

}  // namespace pysample::sampler
