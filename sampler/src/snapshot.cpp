#include "snapshot.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cstdlib>

namespace pysample::sampler {

Snapshotter::Snapshotter(PythonProcess& process, bool blocking, NativeMode native)
    : process_(process),
      pages_(process.memory()),
      code_pages_(process.memory(), kCodePages),
      codes_(code_pages_, process.code_layout(), process.code_type_address()),
      walker_(process.layout(), process.version().major, process.version().minor, pages_, codes_),
      gil_(process),
      states_(process.pid()),
      python_names_(process) {
    if (native != NativeMode::Off) native_ = std::make_unique<NativeStacks>(process, native == NativeMode::All);
    if (blocking || native_) suspender_ = std::make_unique<attach::ThreadSuspender>(process.pid());
    stop_each_thread_ = native_ && !blocking;
}

Snapshotter::~Snapshotter() {
    std::string runs;
    for (const auto& [first, bytes] : pages_.plan()) runs += fmt::format(" {:#x}+{}", first, bytes);
    spdlog::debug(
        "pid {}: {} samples read in one batch, {} needed pages outside it; {} stacks read again; last "
        "batch:{}",
        process_.pid(), stats_.single_reads, stats_.partial_reads, stats_.reread, runs);
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

// Without stopping the thread, its stack is read as it runs, each range at its own instant. The
// batch copies a thread's state and its frames one after another (see RangeCache); the walk
// rejects what cannot be a stack (a frame that is not one, a cycle, a generator cut from its
// caller, a returned frame under another), and what is left is kept as read, whatever the stack
// looks like: keeping only stacks that held still while they were copied would drop the short
// calls, a bias no profile can afford. A walk that fails, or ends elsewhere than the thread's
// known outermost frame, is read once more, from a fresh copy of what it read (one system call).
// A second walk that ends elsewhere too is rejected, and its end becomes the thread's known
// outermost frame: the thread may have moved on to another one.
WalkResult Snapshotter::walk_running(const ThreadStateRef& listed, std::vector<PyFrame>& frames) {
    ThreadStateRef thread = listed;
    pages_.begin_group();
    WalkResult result = walker_.refresh_top_frame(thread);
    if (result == WalkResult::Ok) result = walker_.frames(thread, frames);
    if (result == WalkResult::Ok && reaches_known_base(thread, frames)) return result;
    ++stats_.reread;
    pages_.reread_group();
    result = walker_.refresh_top_frame(thread);
    if (result == WalkResult::Ok) result = walker_.frames(thread, frames);
    if (result != WalkResult::Ok || reaches_known_base(thread, frames)) return result;
    bases_[thread.address] = frames.back().address;
    return WalkResult::Torn;
}

// Before 3.11 a thread state records only the pthread id; the kernel tid is found through it and
// trusted only when it names a live thread of the target.
pid_t Snapshotter::kernel_tid(const ThreadStateRef& thread) {
    if (thread.native_id != 0) return static_cast<pid_t>(thread.native_id);
    // A pthread_t is reused only after its thread exited, so a cached tid that is still alive is right.
    if (auto cached = tids_by_pthread_.find(thread.thread_id); cached != tids_by_pthread_.end()) {
        if (scheduler_state(cached->second) != '?') return cached->second;
        tids_by_pthread_.erase(cached);
    }
    auto tid = attach::tid_of_pthread(pages_, thread.thread_id);
    if (!tid || scheduler_state(*tid) == '?') return 0;
    tids_by_pthread_[thread.thread_id] = *tid;
    return *tid;
}

// The scheduler state is read once per thread per sample, and only in CPU mode, which needs it to
// leave out idle threads; wall-clock mode uses the last listing of the threads.
char Snapshotter::scheduler_state(pid_t tid) {
    for (const auto& [known, state] : sample_states_) {
        if (known == tid) return state;
    }
    char state = states_.read_state(tid);
    sample_states_.emplace_back(tid, state);
    return state;
}

// Lists the process's threads (the directory, then each one's state) a few times a second rather
// than every sample; false when every thread has exited. An exited process stays listed, as
// zombie threads, until its parent reaps it.
bool Snapshotter::list_threads_if_due(bool force) {
    constexpr auto kListEvery = std::chrono::milliseconds(100);
    auto now = std::chrono::steady_clock::now();
    if (!force && listed_at_ != std::chrono::steady_clock::time_point{} && now - listed_at_ < kListEvery) return true;
    listed_at_ = now;
    auto states = states_.read_all();
    listed_states_ = std::map<pid_t, char>(states.begin(), states.end());
    return !std::all_of(states.begin(), states.end(),
                        [](const auto& entry) { return entry.second == 'Z' || entry.second == 'X'; });
}

// The threads run again: unwinding and symbolizing their copied stacks costs them nothing.
void Snapshotter::merge_native_stacks(std::vector<ThreadSnapshot>& snapshots) {
    for (std::size_t i = 0; i < snapshots.size(); ++i) {
        auto& snap = snapshots[i];
        if (!snap.walked || snap.result != WalkResult::Ok) continue;
        // A thread state whose thread has not started yet (no kernel tid) has nothing to merge.
        if (snap.frames.empty() && !captures_[i].ok) continue;
        snap.native = native_->merge(captures_[i], eval_calls_[i], snap.frames);
        // The scheduler state was read before the thread stopped: it may have gone to wait since.
        if (snap.native == MergeResult::Merged && waits_in_native_call(captures_[i], snap.frames)) snap.idle = true;
    }
}

Snapshotter::Outcome Snapshotter::take(std::vector<ThreadSnapshot>& out, bool walk_idle) {
    sample_states_.clear();
    codes_.new_sample();
    code_pages_.clear();
    if (native_) native_->begin_sample();
    if (stop_each_thread_) suspender_->serve_stops();
    if (!list_threads_if_due(false)) {
        out.clear();
        return Outcome::ProcessGone;
    }
    // Scheduler states are read before the threads are stopped: a stopped thread always looks idle.
    if (!walk_idle && suspender_ && !stop_each_thread_) {
        for (const auto& [tid, state] : listed_states_) scheduler_state(tid);
    }
    Outcome outcome = suspender_ ? take_stopped(out, walk_idle) : take_running(out, walk_idle);
    // A failed walk may mean the process has just exited.
    if (outcome == Outcome::Failed && !list_threads_if_due(true)) return Outcome::ProcessGone;
    if (outcome == Outcome::ProcessGone) return outcome;
    name_python_threads(interp_, out);
    if (native_) merge_native_stacks(out);
    return outcome;
}

Snapshotter::Outcome Snapshotter::take_stopped(std::vector<ThreadSnapshot>& out, bool walk_idle) {
    Outcome outcome;
    {
        // Native mode alone stops one thread at a time, while its own stack is read.
        attach::ScopedPause pause(stop_each_thread_ ? nullptr : suspender_.get());
        if (!pause.ok()) return Outcome::ProcessGone;
        pages_.clear();
        pages_.prefetch();
        outcome = read_threads(out, walk_idle, true);
        if (inspect_ && !out.empty()) inspect_(out);
    }
    if (!stop_each_thread_) count_pause(suspender_->last_pause_duration());
    return outcome;
}

// Without stopping the program: one batched copy of the previous sample's pages, then whatever
// else the walks need. A thread starting or exiting while the thread list is read can tear the
// list: it is read again, from fresh copies.
Snapshotter::Outcome Snapshotter::take_running(std::vector<ThreadSnapshot>& out, bool walk_idle) {
    constexpr int kListAttempts = 3;
    pages_.clear();
    pages_.prefetch();
    Outcome outcome = Outcome::Failed;
    for (int attempt = 0; attempt < kListAttempts; ++attempt) {
        if (attempt > 0) pages_.refresh();
        outcome = read_threads(out, walk_idle, attempt + 1 == kListAttempts);
        if (!list_failed_) break;
    }
    ++(pages_.misses() == 0 ? stats_.single_reads : stats_.partial_reads);
    if (inspect_ && !out.empty()) inspect_(out);
    return outcome;
}

// A thread's outermost frame (its module or thread bootstrap frame) stays put while it runs. A
// thread seen for the first time has none known yet.
bool Snapshotter::reaches_known_base(const ThreadStateRef& thread, const std::vector<PyFrame>& frames) const {
    if (frames.empty()) return true;
    auto it = bases_.find(thread.address);
    return it == bases_.end() || it->second == frames.back().address;
}

Snapshotter::Outcome Snapshotter::read_threads(std::vector<ThreadSnapshot>& out, bool walk_idle, bool last_attempt) {
    list_failed_ = false;
    // The interpreter's address changes only at start-up and exit: it is read a few times a second,
    // and again whenever a sample fails.
    auto now = std::chrono::steady_clock::now();
    if (interp_ == 0 || now - interp_read_at_ > kInterpreterRecheck) {
        interp_ = process_.interpreter_head(pages_);
        interp_read_at_ = now;
    }
    if (interp_ == 0) {  // runtime not initialised yet, or finalised
        out.clear();
        return Outcome::Ok;
    }
    if (auto result = walker_.threads(interp_, threads_); result != WalkResult::Ok) {
        out.clear();
        interp_ = 0;
        list_failed_ = true;
        if (last_attempt) {
            ++stats_.rejected;
            ++stats_.reasons[result];
            spdlog::debug("pid {}: thread list unreadable: {}", process_.pid(), describe(result));
        }
        return Outcome::Failed;
    }
    std::uint64_t gil_holder = read_gil_ ? gil_.holder(pages_, interp_) : 0;
    if (native_) {
        captures_.resize(std::max(captures_.size(), threads_.size()));
        eval_calls_.resize(std::max(eval_calls_.size(), threads_.size()));
    }
    bool any_failed = false;
    // Each snapshot's vectors and strings keep their storage from sample to sample.
    out.resize(threads_.size());
    for (std::size_t i = 0; i < threads_.size(); ++i) {
        ThreadSnapshot& snap = out[i];
        snap.frames.clear();
        snap.name.clear();
        snap.idle = snap.walked = false;
        snap.result = WalkResult::Ok;
        snap.native = MergeResult::Merged;
        auto tid = kernel_tid(threads_[i]);
        snap.id = tid != 0 ? static_cast<std::uint64_t>(tid) : threads_[i].thread_id;
        if (tid != 0) {
            auto listed = listed_states_.find(tid);
            char state = walk_idle ? (listed != listed_states_.end() ? listed->second : 'R') : scheduler_state(tid);
            snap.idle = state != 'R';
            snap.name = thread_name(tid);
        }
        snap.holds_gil = gil_holder != 0 && threads_[i].address == gil_holder;
        if (!snap.idle || walk_idle || snap.holds_gil) {
            snap.walked = true;
            snap.result = read_thread(i, tid, snap.frames);
            if (snap.result != WalkResult::Ok) {
                any_failed = true;
                snap.frames.clear();
            }
        }
    }
    if (any_failed) interp_ = 0;
    if (bases_.size() > kMaxRememberedThreads) bases_.clear();
    for (std::size_t i = 0; i < out.size(); ++i) {
        const auto& snap = out[i];
        if (!snap.walked) continue;
        if (snap.result == WalkResult::Ok && !snap.frames.empty())
            bases_[threads_[i].address] = snap.frames.back().address;
        ++stats_.thread_stacks;
        if (snap.result != WalkResult::Ok) {
            ++stats_.rejected;
            ++stats_.reasons[snap.result];
        }
    }
    return any_failed ? Outcome::Failed : Outcome::Ok;
}

// Threads held stopped are read as they are; threads that run are read as walk_running() says.
WalkResult Snapshotter::read_thread(std::size_t index, pid_t tid, std::vector<PyFrame>& frames) {
    const auto& thread = threads_[index];
    bool all_stopped = suspender_ && !stop_each_thread_;
    if (!native_) return all_stopped ? walker_.frames(thread, frames) : walk_running(thread, frames);
    captures_[index].ok = false;
    if (!stop_each_thread_) {
        if (tid != 0) native_->capture(tid, captures_[index]);
        return walker_.frames(thread, frames, &eval_calls_[index]);
    }
    if (tid == 0 || !suspender_->pause_thread(tid)) return walk_running(thread, frames);
    // What was read before the thread stopped may be stale: its frame pointer and cached pages.
    pages_.refresh();
    ThreadStateRef stopped = thread;
    WalkResult result = walker_.refresh_top_frame(stopped);
    // The thread that was stopped may be on its way out, its thread state already freed and taken
    // by a new thread, which runs on: the state must still name the ids the tid was found from.
    const auto& layout = process_.layout();
    auto same_id = [&](std::int64_t offset, std::uint64_t listed) {
        std::uint64_t now = 0;
        return offset < 0 ||
               (pages_.read_value(thread.address + static_cast<std::uint64_t>(offset), now) && now == listed);
    };
    if (result == WalkResult::Ok && !(same_id(layout.tstate_thread_id, thread.thread_id) &&
                                      same_id(layout.tstate_native_thread_id, thread.native_id))) {
        result = WalkResult::Torn;
    }
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
