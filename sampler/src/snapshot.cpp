#include "snapshot.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>

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
    for (const auto& [first, pages] : pages_.plan()) runs += fmt::format(" {:#x}+{}", first, pages);
    spdlog::debug("pid {}: {} samples read in one batch, {} read stack by stack; last batch:{}", process_.pid(),
                  stats_.single_reads, stats_.reread, runs);
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
    pages_.refresh();
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
        outcome = read_threads(out, walk_idle, Consistency::Stopped);
        if (inspect_ && !out.empty()) inspect_(out);
    }
    if (!stop_each_thread_) count_pause(suspender_->last_pause_duration());
    return outcome;
}

// Without stopping the program, a sample is kept as it is when a single batched read held every
// page its walk needed (the previous sample's pages, copied thread states first, by one system
// call) and each walked thread's innermost-frame pointer, read again at the end of that call, had
// not changed. Otherwise (new threads, a deeper stack, a call or return during the copy, a torn
// stack) the batch is tried again, with the new pages; after that each stack is read twice and
// kept only when both reads agree.
Snapshotter::Outcome Snapshotter::take_running(std::vector<ThreadSnapshot>& out, bool walk_idle) {
    constexpr int kBatches = 3;
    for (int attempt = 0; attempt < kBatches; ++attempt) {
        pages_.clear();
        pages_.prefetch();
        bool last = attempt + 1 == kBatches;
        Outcome outcome = read_threads(out, walk_idle, last ? Consistency::LastBatch : Consistency::OneBatch);
        update_rechecks(out);
        if (batch_complete_ && (outcome == Outcome::Ok || last)) {
            ++stats_.single_reads;
            if (inspect_ && !out.empty()) inspect_(out);
            return outcome;
        }
    }
    ++stats_.reread;
    pages_.refresh();
    Outcome outcome = read_threads(out, walk_idle, Consistency::ReadTwice);
    if (inspect_ && !out.empty()) inspect_(out);
    return outcome;
}

// The next batch rereads, for each walked thread, the words that fixed its stack's shape.
void Snapshotter::update_rechecks(const std::vector<ThreadSnapshot>& out) {
    fields_.clear();
    for (std::size_t i = 0; i < out.size() && i < threads_.size(); ++i) {
        if (out[i].walked) add_shape_words(threads_[i], out[i].frames, fields_);
    }
    std::sort(fields_.begin(), fields_.end());
    if (fields_ != rechecked_fields_) {
        rechecked_fields_ = fields_;
        pages_.recheck_after_batch(fields_);
    }
}

// The words a walk read that a call, return, yield or resume during the copy would change:
// - the thread state's frame pointer, and in 3.11/3.12 the _PyCFrame's, which another C-level
//   evaluation call (a generator resumed from C) replaces and whose slot keeps its stale value;
// - the innermost frame's code object: a return followed by another call from the same caller
//   reuses the frame's slot in the data stack, leaving every frame pointer as it was;
// - the caller's position (f_lasti, or the instruction pointer from 3.11): a caller that moved on
//   and came back to the same callee (a generator resumed by its for loop) changes nothing else.
void Snapshotter::add_shape_words(const ThreadStateRef& thread, const std::vector<PyFrame>& frames,
                                  std::vector<std::uint64_t>& words) const {
    const auto& layout = process_.layout();
    auto field = [](std::uint64_t base, std::int64_t offset) { return base + static_cast<std::uint64_t>(offset); };
    bool interpreter_frames = layout.iframe_size > 0;
    words.push_back(field(thread.address, layout.tstate_frame));
    if (thread.top_frame_field != 0 && thread.top_frame_field != words.back()) words.push_back(thread.top_frame_field);
    std::int64_t code = interpreter_frames ? layout.iframe_code : layout.frame_code;
    if (!frames.empty() && frames[0].native == nullptr && frames[0].address != 0 && code >= 0) {
        words.push_back(field(frames[0].address, code));
    }
    std::int64_t position = interpreter_frames ? layout.iframe_instr : layout.frame_lasti;
    if (frames.size() >= 2 && frames[1].native == nullptr && frames[1].address != 0 && position >= 0) {
        words.push_back(field(frames[1].address, position));
    }
}

// Whether each word that fixed the thread's stack, as the batch copied it, still held its value
// when the batch ended.
bool Snapshotter::shape_held(const ThreadStateRef& thread, const std::vector<PyFrame>& frames) {
    shape_words_.clear();
    add_shape_words(thread, frames, shape_words_);
    for (std::uint64_t address : shape_words_) {
        std::uint64_t in_batch = 0;
        auto again = pages_.rechecked(address);
        if (!again || !pages_.read_value(address, in_batch) || in_batch != *again) return false;
    }
    return true;
}

// A stack read without stopping the thread may end early: a generator that has just yielded has
// no caller, and a caller read after a return may link elsewhere. A thread's outermost frame (its
// module or thread bootstrap frame) stays put while it runs, so a walk that ends at another frame
// than the thread's last one is read again before it is believed.
bool Snapshotter::reaches_known_base(const ThreadStateRef& thread, const std::vector<PyFrame>& frames) const {
    if (frames.empty()) return true;
    auto it = bases_.find(thread.address);
    return it != bases_.end() && it->second == frames.back().address;
}

Snapshotter::Outcome Snapshotter::read_threads(std::vector<ThreadSnapshot>& out, bool walk_idle,
                                               Consistency consistency) {
    bool batched = consistency == Consistency::OneBatch || consistency == Consistency::LastBatch;
    batch_complete_ = batched;
    // The interpreter's address changes only at start-up and exit: it is read a few times a second,
    // and again whenever a sample fails.
    auto now = std::chrono::steady_clock::now();
    if (interp_ == 0 || consistency == Consistency::ReadTwice || now - interp_read_at_ > kInterpreterRecheck) {
        interp_ = process_.interpreter_head(pages_);
        interp_read_at_ = now;
    }
    if (interp_ == 0) {  // runtime not initialised yet, or finalised
        out.clear();
        batch_complete_ = batched && pages_.misses() == 0;
        return Outcome::Ok;
    }
    if (auto result = walker_.threads(interp_, threads_); result != WalkResult::Ok) {
        out.clear();
        interp_ = 0;
        batch_complete_ = false;
        if (consistency != Consistency::OneBatch) {
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
            snap.result = read_thread(i, tid, snap.frames, consistency);
            if (batched && !shape_held(threads_[i], snap.frames)) batch_complete_ = false;
            if (snap.result != WalkResult::Ok) {
                any_failed = true;
                snap.frames.clear();
            } else if (batched && !reaches_known_base(threads_[i], snap.frames)) {
                batch_complete_ = false;
            }
        }
    }
    // A batched attempt that needed pages outside its batch, or found a torn stack, is tried again;
    // its stacks are not counted.
    if (pages_.misses() != 0) batch_complete_ = false;
    if (batched && (!batch_complete_ || (any_failed && consistency == Consistency::OneBatch))) {
        return any_failed ? Outcome::Failed : Outcome::Ok;
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

WalkResult Snapshotter::read_thread(std::size_t index, pid_t tid, std::vector<PyFrame>& frames,
                                    Consistency consistency) {
    const auto& thread = threads_[index];
    if (!native_) {
        return consistency == Consistency::ReadTwice ? walk_consistent(thread, frames) : walker_.frames(thread, frames);
    }
    captures_[index].ok = false;
    if (!stop_each_thread_) {
        if (tid != 0) native_->capture(tid, captures_[index]);
        return walker_.frames(thread, frames, &eval_calls_[index]);
    }
    if (tid == 0 || !suspender_->pause_thread(tid)) return walk_consistent(thread, frames);
    // What was read before the thread stopped may be stale: its frame pointer and cached pages.
    pages_.refresh();
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
