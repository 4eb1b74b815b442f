#include "engine/snapshot.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cstdlib>

#include "attach/error.hpp"

namespace pysample::sampler {

Snapshotter::Snapshotter(PythonProcess& process, bool blocking, NativeMode native)
    : process_(process),
      pages_(process.memory()),
      code_pages_(process.memory(), kCodePages),
      codes_(code_pages_, process.code_layout(), process.code_type_address()),
      walker_(process.layout(), pages_, codes_),
      gil_(process),
      target_(process.target()),
      python_names_(process) {
    if (native != NativeMode::Off) native_ = std::make_unique<NativeStacks>(process, native == NativeMode::All);
    // A core file's threads stand still already, their registers recorded.
    if ((blocking || native_) && target_.live()) suspender_ = std::make_unique<attach::ThreadSuspender>(process.pid());
    stop_each_thread_ = native_ && !blocking && suspender_;
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
    for (std::size_t i = 0; i < snapshots.size() && i < threads_.size(); ++i) {
        idents_.push_back(i < thread_idents_.size() ? thread_idents_[i] : threads_[i].thread_id);
    }
    python_names_.update(interp, idents_);
    for (std::size_t i = 0; i < idents_.size(); ++i) {
        if (const auto* name = python_names_.find(idents_[i])) snapshots[i].name = *name;
    }
}

const std::string& Snapshotter::thread_name(pid_t tid) {
    auto it = names_.find(tid);
    if (it == names_.end()) {
        it = names_.emplace(tid, target_.thread_name(tid)).first;
    }
    return it->second;
}

// Without stopping the thread, its stack is read as it runs, each range at its own instant. The
// batch copies a thread's state and its frames one after another (see RangeCache); the walk
// rejects what cannot be a stack (a frame that is not one, a cycle, a generator cut from its
// caller, a returned frame under another), and what is left is kept as read, whatever the stack
// looks like: keeping only stacks that held still while they were copied would drop the short
// calls, a bias no profile can afford.
//
// A walk that fails, or ends elsewhere than an outermost frame the thread was seen to end at, is
// read again from a fresh copy of what it read (one system call each time), up to kMaxRereads
// times: a thread caught between two writes that must go together (a call that has set its
// _PyCFrame but not yet its frame, a frame popped and reused) is consistent again within
// microseconds, unless it lost its CPU right there. A walk is kept when it ends at a known base,
// or where the previous walk ended: two reads agreeing on a new base (a new thread on a reused
// thread state, a greenlet seen for the first time) confirm it.
WalkResult Snapshotter::walk_running(const ThreadStateRef& listed, std::vector<PyFrame>& frames) {
    ThreadStateRef thread = listed;
    pages_.begin_group();
    WalkResult result = walker_.refresh_top_frame(thread);
    if (result == WalkResult::Ok) result = walker_.frames(thread, frames);
    if (result == WalkResult::Ok && reaches_known_base(thread, frames)) return result;
    std::uint64_t last_base = result == WalkResult::Ok && !frames.empty() ? frames.back().address : 0;
    for (int reread = 0; reread < kMaxRereads; ++reread) {
        ++stats_.reread;
        pages_.reread_group();
        result = walker_.refresh_top_frame(thread);
        if (result == WalkResult::Ok) result = walker_.frames(thread, frames);
        if (result != WalkResult::Ok) continue;
        if (reaches_known_base(thread, frames) || frames.back().address == last_base) return result;
        last_base = frames.back().address;
    }
    return result == WalkResult::Ok ? WalkResult::Torn : result;
}

// Before 3.11 a thread state records only the pthread id; the kernel tid is found through it and
// trusted only when it names a live thread of the target. Either way the id is the one in the
// target's PID namespace, translated to pysample's.
pid_t Snapshotter::kernel_tid(const ThreadStateRef& thread) {
    if (thread.native_id != 0) return target_.tid_from_program(static_cast<pid_t>(thread.native_id));
    // A pthread_t is reused only after its thread exited, so a cached tid that is still alive is right.
    if (auto cached = tids_by_pthread_.find(thread.thread_id); cached != tids_by_pthread_.end()) {
        if (scheduler_state(cached->second) != '?') return cached->second;
        tids_by_pthread_.erase(cached);
    }
    auto inner = attach::tid_of_pthread(pages_, thread.thread_id);
    pid_t tid = inner ? target_.tid_from_program(*inner) : 0;
    if (tid == 0 || scheduler_state(tid) == '?') return 0;
    tids_by_pthread_[thread.thread_id] = tid;
    return tid;
}

// The scheduler state is read once per thread per sample, and only in CPU mode, which needs it to
// leave out idle threads; wall-clock mode uses the last listing of the threads.
char Snapshotter::scheduler_state(pid_t tid) {
    for (const auto& [known, state] : sample_states_) {
        if (known == tid) return state;
    }
    char state = target_.thread_state(tid);
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
    auto states = target_.threads();
    listed_states_ = std::map<pid_t, char>(states.begin(), states.end());
    std::erase_if(cpu_shares_, [&](const auto& entry) { return listed_states_.count(entry.first) == 0; });
    return !std::all_of(states.begin(), states.end(),
                        [](const auto& entry) { return entry.second == 'Z' || entry.second == 'X'; });
}

// The threads run again: unwinding and symbolizing their copied stacks costs them nothing.
void Snapshotter::merge_native_stacks(std::vector<ThreadSnapshot>& snapshots) {
    for (std::size_t i = 0; i < snapshots.size(); ++i) {
        auto& snap = snapshots[i];
        if (!snap.walked || snap.joined || snap.result != WalkResult::Ok) continue;
        // A thread state whose thread has not started yet (no kernel tid) has nothing to merge.
        if (snap.frames.empty() && !captures_[i].ok) continue;
        snap.native =
            native_->merge(captures_[i], eval_calls_[i], snap.frames, bases_.switches_stacks(threads_[i].address));
        // The scheduler state was read before the thread stopped: it may have gone to wait since.
        if (snap.native == MergeResult::Merged && waits_in_native_call(captures_[i], snap.frames)) {
            snap.idle = true;
            if (!walk_idle_) snap.weight = 0;
        }
    }
}

Snapshotter::Outcome Snapshotter::take(std::vector<ThreadSnapshot>& out, bool walk_idle) {
    walk_idle_ = walk_idle;
    sample_weights_.clear();
    auto now = std::chrono::steady_clock::now();
    if (takes_++ == 0) first_take_ = now;
    if (takes_ > 1) {
        mean_interval_ns_ =
            static_cast<std::uint64_t>(std::chrono::nanoseconds(now - first_take_).count()) / (takes_ - 1);
    }
    sample_states_.clear();
    codes_.new_sample();
    code_pages_.clear();
    if (native_) native_->begin_sample();
    serve_stops();
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
    name_python_threads(walker_.main_interpreter(), out);
    if (walker_.interpreters() > 1) join_interpreters(out);
    if (native_) merge_native_stacks(out);
    return outcome;
}

Snapshotter::Outcome Snapshotter::take_stopped(std::vector<ThreadSnapshot>& out, bool walk_idle) {
    Outcome outcome;
    {
        // Native mode alone stops one thread at a time, while its own stack is read. CPU time
        // leaves out the threads that are waiting: they are not read, so not stopped either.
        waiting_tids_.clear();
        if (!walk_idle) {
            for (const auto& [tid, state] : sample_states_) {
                if (state != 'R' && state != '?') waiting_tids_.push_back(tid);
            }
            std::sort(waiting_tids_.begin(), waiting_tids_.end());
        }
        auto waiting = [&](pid_t tid) { return std::binary_search(waiting_tids_.begin(), waiting_tids_.end(), tid); };
        attach::ScopedPause pause(stop_each_thread_ ? nullptr : suspender_.get(), waiting);
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

bool Snapshotter::reaches_known_base(const ThreadStateRef& thread, const std::vector<PyFrame>& frames) const {
    return frames.empty() || bases_.plausible(thread.address, frames.back().address);
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
            ++stats_.unreadable_lists;
            ++stats_.list_reasons[result];
            spdlog::debug("pid {}: thread list unreadable: {}", process_.pid(), describe(result));
        }
        return Outcome::Failed;
    }
    gil_holders_.clear();
    if (native_) {
        captures_.resize(std::max(captures_.size(), threads_.size()));
        eval_calls_.resize(std::max(eval_calls_.size(), threads_.size()));
    }
    bool any_failed = false;
    thread_tids_.resize(threads_.size());
    thread_idents_.resize(threads_.size());
    for (std::size_t i = 0; i < threads_.size(); ++i) {
        thread_tids_[i] = kernel_tid(threads_[i]);
        thread_idents_[i] = threads_[i].thread_id;
    }
    thread_unknown_.clear();
    if (walker_.interpreters() > 1) find_threads_running_subinterpreters();
    // Each snapshot's vectors and strings keep their storage from sample to sample.
    out.resize(threads_.size());
    for (std::size_t i = 0; i < threads_.size(); ++i) {
        ThreadSnapshot& snap = out[i];
        snap.frames.clear();
        snap.name.clear();
        snap.idle = snap.walked = snap.joined = false;
        snap.task = 0;
        snap.stack_version = 0;
        snap.interpreter = threads_[i].interpreter_id;
        snap.result = WalkResult::Ok;
        snap.native = MergeResult::Merged;
        pid_t tid = thread_tids_[i];
        // A sub-interpreter's state whose thread cannot be told is shown under the one it records.
        pid_t shown = tid != 0 || thread_unknown_.empty() || !thread_unknown_[i] ? tid : kernel_tid(threads_[i]);
        snap.id = shown != 0 ? static_cast<std::uint64_t>(shown) : threads_[i].thread_id;
        snap.namespace_id =
            tid != 0 && target_.separate_pid_namespace() ? static_cast<std::uint64_t>(target_.tid_in_program(tid)) : 0;
        snap.weight = 1;
        if (tid != 0) {
            auto listed = listed_states_.find(tid);
            char state = walk_idle ? (listed != listed_states_.end() ? listed->second : 'R') : scheduler_state(tid);
            snap.idle = state != 'R';
            if (!walk_idle) snap.weight = cpu_weight(tid, state);
            snap.name = thread_name(tid);
        }
        snap.holds_gil = read_gil_ && threads_[i].address == gil_holder(threads_[i].interpreter);
        if (snap.weight > 0 || walk_idle || snap.holds_gil) {
            snap.walked = true;
            snap.result = read_thread(i, tid, snap.frames);
            if (snap.result != WalkResult::Ok) {
                snap.frames.clear();
                // A thread that ended while it was read leaves no stack, and no error: its state
                // may have been freed and its memory reused.
                if (thread_exited(threads_[i])) {
                    snap.walked = false;
                    snap.result = WalkResult::Ok;
                    ++stats_.exited_while_read;
                } else {
                    any_failed = true;
                }
            }
        }
    }
    if (any_failed) interp_ = 0;
    for (std::size_t i = 0; i < out.size(); ++i) {
        const auto& snap = out[i];
        if (!snap.walked) continue;
        if (snap.result == WalkResult::Ok && !snap.frames.empty())
            bases_.confirm(threads_[i].address, snap.frames.back().address);
        ++stats_.thread_stacks;
        count_cut_stack(snap.frames);
        if (snap.result != WalkResult::Ok) {
            ++stats_.rejected;
            ++stats_.reasons[snap.result];
        }
    }
    return any_failed ? Outcome::Failed : Outcome::Ok;
}

// Where the thread running a sub-interpreter cannot be told, its stack is not joined to any other:
// it is shown under its marker as it is, and counted.
void Snapshotter::mark_unknown_subinterpreter_threads(std::vector<ThreadSnapshot>& snapshots) {
    for (std::size_t i = 0; i < snapshots.size(); ++i) {
        auto& snap = snapshots[i];
        if (snap.interpreter == 0 || snap.frames.empty() || !thread_unknown_[i]) continue;
        PyFrame marker;
        marker.interpreter = snap.interpreter;
        snap.frames.push_back(marker);
        if (native_) eval_calls_[i].cut = true;
        ++stats_.unknown_thread_stacks;
    }
}

// A sub-interpreter may be run by another thread than the one that created it, on a thread state
// that records its creator (3.8 to 3.12 reuse the interpreter's first thread state). From 3.10 to
// 3.12 a running thread state's _PyCFrame lies on the C stack of the thread running it: the thread
// whose own state's _PyCFrame is on the same stack is the one. From 3.13 each thread has a state
// of its own. Before 3.10 nothing tells: such a state's thread is taken as unknown. Decided before
// any thread is read, so that each thread state is read, and stopped, as the thread that runs it.
void Snapshotter::find_threads_running_subinterpreters() {
    thread_unknown_.assign(threads_.size(), false);
    bool by_cframe = process_.layout().tstate_cframe >= 0;
    bool bound = process_.knows_subinterpreter_threads() && !by_cframe;
    auto on_a_stack = [&](std::size_t i) {
        const auto& thread = threads_[i];
        bool in_state = thread.cframe >= thread.address &&
                        thread.cframe < thread.address + static_cast<std::uint64_t>(process_.layout().tstate_size);
        return thread.cframe != 0 && !in_state && thread.top_frame != 0;
    };
    for (std::size_t i = 0; i < threads_.size(); ++i) {
        if (threads_[i].interpreter_id == 0 || threads_[i].top_frame == 0 || bound) continue;
        thread_unknown_[i] = true;
        if (!by_cframe || !on_a_stack(i)) continue;
        const auto* stack = stack_mapping(threads_[i].cframe);
        if (stack == nullptr) continue;
        for (std::size_t j = 0; j < threads_.size(); ++j) {
            if (j == i || threads_[j].interpreter_id >= threads_[i].interpreter_id || !on_a_stack(j) ||
                !stack->contains(threads_[j].cframe) || thread_tids_[j] == 0) {
                continue;
            }
            thread_tids_[i] = thread_tids_[j];
            thread_idents_[i] = thread_idents_[j];
            thread_unknown_[i] = false;
            break;
        }
        if (thread_unknown_[i]) thread_tids_[i] = 0;
    }
}

// The mapping of the target holding `address`, from /proc/PID/maps read at most once a second,
// or again (at most ten times a second) for an address it does not hold.
const attach::MapEntry* Snapshotter::stack_mapping(std::uint64_t address) {
    auto find = [&]() -> const attach::MapEntry* {
        for (const auto& entry : maps_) {
            if (entry.contains(address)) return &entry;
        }
        return nullptr;
    };
    auto now = std::chrono::steady_clock::now();
    auto age = now - maps_read_at_;
    const attach::MapEntry* found = age < std::chrono::seconds(1) ? find() : nullptr;
    if (found != nullptr || age < std::chrono::milliseconds(100)) return found;
    try {
        maps_ = target_.maps();
    } catch (const attach::Error&) {
        maps_.clear();
    }
    maps_read_at_ = now;
    return find();
}

// A thread's scheduler state says whether it runs or could, not whether it has a core: on a loaded
// machine runnable threads wait for one, and many threads that wake for a moment now and then
// queue for the cores they share. So a runnable thread is counted for the CPU time it used, which
// the kernel counts exactly at each context switch (schedstat), in one of two ways:
// - A thread that has lived for kYoung (or was there when sampling began) counts for the CPU time
//   it used since it was last counted: as many samples as whole mean intervals between samples,
//   and one more with the chance of the fraction left. Its stack is where it runs, or was
//   preempted running.
// - A thread younger than that may end before it is caught runnable again, taking what it ran
//   since with it. It is counted with the chance that it was running rather than waiting on a run
//   queue, from the times the kernel counts for each since its start: on average it counts for
//   the CPU time it uses, however short its life.
std::uint32_t Snapshotter::cpu_weight(pid_t tid, char state) {
    // A thread entered into a sub-interpreter has a state in each: they are one thread, counted once.
    for (const auto& [known, weight] : sample_weights_) {
        if (known == tid) return weight;
    }
    std::uint32_t weight = thread_cpu_weight(tid, state);
    sample_weights_.emplace_back(tid, weight);
    return weight;
}

std::uint32_t Snapshotter::thread_cpu_weight(pid_t tid, char state) {
    constexpr auto kYoung = std::chrono::milliseconds(200);
    constexpr std::uint64_t kMaxWeight = 1000;
    auto now = std::chrono::steady_clock::now();
    if (!cpu_baselines_taken_) {
        // What the threads there already ran before sampling began is not counted.
        cpu_baselines_taken_ = true;
        for (const auto& [listed, listed_state] : listed_states_) {
            if (auto times = target_.cpu_times(listed)) cpu_shares_[listed] = {times->running, now, true};
        }
    }
    if (state != 'R') return 0;
    auto times = target_.cpu_times(tid);
    if (!times) return 1;
    auto [it, first] = cpu_shares_.try_emplace(tid, CpuShare{times->running, now, false});
    CpuShare& share = it->second;
    if (times->running < share.counted) share = {times->running, now, false};  // a tid reused by a new thread
    if (!share.counting_time && now - share.first_seen >= kYoung) share = {times->running, share.first_seen, true};
    if (!share.counting_time || mean_interval_ns_ == 0) {
        // A thread never given a CPU yet waits for its first.
        if (times->runs == 0) return 0;
        std::uint64_t runnable = times->running + times->waiting;
        double on_cpu = runnable == 0 ? 1.0 : static_cast<double>(times->running) / static_cast<double>(runnable);
        return std::uniform_real_distribution<double>(0.0, 1.0)(random_) < on_cpu ? 1 : 0;
    }
    std::uint64_t unspent = times->running - share.counted;
    share.counted = times->running;
    std::uint64_t weight = unspent / mean_interval_ns_;
    if (std::uniform_int_distribution<std::uint64_t>(0, mean_interval_ns_ - 1)(random_) < unspent % mean_interval_ns_) {
        ++weight;
    }
    return static_cast<std::uint32_t>(std::min(weight, kMaxWeight));
}

// Whether the thread state is gone from its interpreter's list, read afresh, or now belongs to
// another thread.
bool Snapshotter::thread_exited(const ThreadStateRef& thread) {
    pages_.refresh();
    if (walker_.threads(interp_, listed_again_) != WalkResult::Ok) return false;
    return std::none_of(listed_again_.begin(), listed_again_.end(), [&](const ThreadStateRef& listed) {
        return listed.address == thread.address && listed.thread_id == thread.thread_id;
    });
}

// Each interpreter has its own GIL from 3.12; before, every interpreter's holder is the same.
std::uint64_t Snapshotter::gil_holder(std::uint64_t interp) {
    for (const auto& [known, holder] : gil_holders_) {
        if (known == interp) return holder;
    }
    std::uint64_t holder = gil_.holder(pages_, interp);
    gil_holders_.emplace_back(interp, holder);
    return holder;
}

// A thread that runs code in a sub-interpreter has a thread state in each interpreter it entered,
// the outer ones waiting in the call that entered the next. They become one stack, outermost
// interpreter at the root, a "[interpreter N]" marker where each sub-interpreter's frames begin
// (also for a thread that lives in a sub-interpreter alone); the other snapshots are marked
// joined and left empty. Interpreters are entered in the order they were created, so a lower id
// is further out.
void Snapshotter::join_interpreters(std::vector<ThreadSnapshot>& snapshots) {
    mark_unknown_subinterpreter_threads(snapshots);
    std::vector<std::size_t> order;
    for (std::size_t i = 0; i < snapshots.size(); ++i) {
        if (!thread_unknown_[i]) order.push_back(i);
    }
    auto tid_of = [&](std::size_t i) { return snapshots[i].id; };
    std::stable_sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) {
        return tid_of(a) != tid_of(b) ? tid_of(a) < tid_of(b) : snapshots[a].interpreter > snapshots[b].interpreter;
    });
    std::vector<PyFrame> joined;
    for (std::size_t begin = 0; begin < order.size();) {
        std::size_t end = begin + 1;
        while (end < order.size() && tid_of(order[end]) == tid_of(order[begin])) ++end;
        // order[begin, end): one thread's states, innermost interpreter first.
        auto innermost = std::find_if(order.begin() + static_cast<std::ptrdiff_t>(begin),
                                      order.begin() + static_cast<std::ptrdiff_t>(end),
                                      [&](std::size_t i) { return !snapshots[i].frames.empty(); });
        std::size_t keep = innermost != order.begin() + static_cast<std::ptrdiff_t>(end) ? *innermost : order[end - 1];
        joined.clear();
        EvalCalls* calls = native_ ? &eval_calls_[keep] : nullptr;
        EvalCalls combined;
        for (std::size_t k = begin; k < end; ++k) {
            std::size_t i = order[k];
            ThreadSnapshot& part = snapshots[i];
            if (i != keep && part.frames.empty()) {
                part.joined = true;
                continue;
            }
            auto offset = static_cast<std::uint32_t>(joined.size());
            joined.insert(joined.end(), part.frames.begin(), part.frames.end());
            if (calls != nullptr) {
                combined.cut = combined.cut || eval_calls_[i].cut;
                for (auto call_end : eval_calls_[i].ends) combined.ends.push_back(offset + call_end);
            }
            if (part.interpreter != 0 && !part.frames.empty()) {
                PyFrame marker;
                marker.interpreter = part.interpreter;
                joined.push_back(marker);
                // The marker belongs to the outermost evaluation call of its interpreter.
                if (calls != nullptr && !combined.ends.empty() && combined.ends.back() + 1 == joined.size())
                    ++combined.ends.back();
            }
            snapshots[keep].holds_gil = snapshots[keep].holds_gil || part.holds_gil;
            if (i != keep) {
                part.joined = true;
                part.frames.clear();
            }
        }
        snapshots[keep].frames.swap(joined);
        if (calls != nullptr) *calls = std::move(combined);
        begin = end;
    }
}

// Threads held stopped are read as they are; threads that run are read as walk_running() says.
WalkResult Snapshotter::read_thread(std::size_t index, pid_t tid, std::vector<PyFrame>& frames) {
    const auto& thread = threads_[index];
    bool all_stopped = suspender_ && !stop_each_thread_;
    if (!native_) return all_stopped ? walker_.frames(thread, frames) : walk_running(thread, frames);
    captures_[index].ok = false;
    // A Python stack cut in the middle cannot be merged: its native stack is not copied.
    if (!stop_each_thread_) {
        WalkResult result = walker_.frames(thread, frames, &eval_calls_[index]);
        if (tid != 0 && !eval_calls_[index].cut) native_->capture(tid, captures_[index]);
        return result;
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
    if (!eval_calls_[index].cut) native_->capture(tid, captures_[index]);
    suspender_->resume_thread(tid);
    count_pause(suspender_->last_pause_duration());
    return result;
}

void Snapshotter::count_cut_stack(const std::vector<PyFrame>& frames) {
    auto marker = std::find_if(frames.begin(), frames.end(), [](const PyFrame& f) { return f.is_omitted_marker(); });
    if (marker == frames.end()) return;
    ++stats_.cut;
    stats_.deepest = std::max<std::uint64_t>(stats_.deepest, frames.size() - 1 + marker->omitted);
}

void Snapshotter::serve_stops() {
    if (suspender_) {
        suspender_->serve_stops();
    } else if (target_.live()) {
        attach::serve_leftover_stops();
    }
}

void Snapshotter::count_pause(std::chrono::nanoseconds duration) {
    pause_total_ += duration;
    ++pauses_;
}

}  // namespace pysample::sampler
