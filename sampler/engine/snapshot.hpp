// One look at every Python thread of a process: the unit both `record` and `dump` are built on.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <unordered_map>
#include <vector>

#include "attach/maps.hpp"
#include "attach/ptrace.hpp"
#include "attach/range_cache.hpp"
#include "attach/threads.hpp"
#include "engine/native_stack.hpp"
#include "engine/stack_bases.hpp"
#include "model/gil.hpp"
#include "model/python_process.hpp"
#include "model/stack_walker.hpp"
#include "model/thread_names.hpp"

namespace pysample::sampler {

struct ThreadSnapshot {
    std::uint64_t id = 0;            // kernel tid as pysample sees it where known, else the pthread id
    std::uint64_t namespace_id = 0;  // the tid in the target's own PID namespace, when it has one apart
    std::string name;
    bool idle = false;  // not running or runnable (its scheduler state is not R)
    // How many samples its stack counts for in this one: 1, or 0 when CPU time is sampled and the
    // thread is idle, or runnable but taken for waiting for a core (see Snapshotter::cpu_weight()).
    std::uint32_t weight = 1;
    bool walked = false;
    bool holds_gil = false;
    // Its stack is part of another snapshot's: the same thread, entered into another interpreter.
    bool joined = false;
    std::int64_t interpreter = 0;  // of its innermost Python frame
    WalkResult result = WalkResult::Ok;
    std::vector<PyFrame> frames;  // innermost first; in native mode merged with native frames
    MergeResult native = MergeResult::Merged;
    // Not a thread's own stack but an asyncio task waiting in the thread's event loop (with
    // --async in wall-clock mode): the task's address.
    std::uint64_t task = 0;
    // Non-zero when the stack is the same as that of every snapshot of the same thread or task
    // with the same version: it need not be compared frame by frame.
    std::uint64_t stack_version = 0;
};

enum class NativeMode { Off, Filtered, All };

struct SnapshotStats {
    std::uint64_t thread_stacks = 0;  // stacks walked
    std::uint64_t rejected = 0;       // stacks not read whole (failed read, torn chain)
    std::map<WalkResult, std::uint64_t> reasons;
    // Samples in which the list of threads itself could not be read: no stack was walked.
    std::uint64_t unreadable_lists = 0;
    std::map<WalkResult, std::uint64_t> list_reasons;
    std::uint64_t single_reads = 0;   // unstopped samples copied whole in one batched read
    std::uint64_t partial_reads = 0;  // unstopped samples that needed pages outside the batch
    std::uint64_t reread = 0;         // unstopped walks read again: failed, or ended off the thread's base
    std::uint64_t cut = 0;            // stacks too deep to keep whole, kept with their middle left out
    std::uint64_t deepest = 0;        // frames in the deepest of them
    // Stacks of sub-interpreters whose running thread the version does not record (before 3.10):
    // shown under the thread that created the interpreter.
    std::uint64_t unknown_thread_stacks = 0;
    std::uint64_t exited_while_read = 0;  // threads that ended while their stack was read
};

class Snapshotter {
public:
    // With `blocking`, every thread is held under ptrace for the Snapshotter's lifetime and
    // stopped while each snapshot is read. Native mode holds them too, but stops one thread at a
    // time (all at once with `blocking`) while its Python frames, registers and stack are copied;
    // the stack is unwound once the thread runs again.
    Snapshotter(PythonProcess& process, bool blocking, NativeMode native = NativeMode::Off);
    ~Snapshotter();
    Snapshotter(const Snapshotter&) = delete;
    Snapshotter& operator=(const Snapshotter&) = delete;

    enum class Outcome { Ok, Failed, ProcessGone };
    // Walks every thread; idle threads are listed but their stacks are walked only if `walk_idle`
    // or they hold the GIL.
    Outcome take(std::vector<ThreadSnapshot>& out, bool walk_idle);
    // Called by take() once the stacks are read, while the threads are still stopped (blocking mode),
    // to read more of them: the frames' local variables.
    void inspect_each_snapshot(std::function<void(std::vector<ThreadSnapshot>&)> inspect) {
        inspect_ = std::move(inspect);
    }
    // The thread states of the last take(), in the order of its snapshots.
    const std::vector<ThreadStateRef>& thread_states() const { return threads_; }
    symbolize::CodeCache& codes() { return codes_; }
    const GilReader& gil() const { return gil_; }
    // Whether each snapshot says which thread holds the GIL (on by default; one more read).
    void read_gil(bool enabled) { read_gil_ = enabled; }

    // Lets go of threads that stopped late for an earlier pause; see ThreadSuspender::serve_stops().
    void serve_stops();
    const SnapshotStats& stats() const { return stats_; }
    attach::ThreadSuspender* suspender() { return suspender_.get(); }
    const NativeStats* native_stats() const { return native_ ? &native_->stats() : nullptr; }
    // Mean time threads were held stopped: per sample when all are stopped together, per thread
    // stack in native mode alone. Zero when nothing is stopped.
    std::chrono::nanoseconds mean_pause() const {
        return pauses_ == 0 ? std::chrono::nanoseconds(0) : pause_total_ / static_cast<std::int64_t>(pauses_);
    }
    bool stops_each_thread() const { return stop_each_thread_; }

private:
    Outcome take_stopped(std::vector<ThreadSnapshot>& out, bool walk_idle);
    Outcome take_running(std::vector<ThreadSnapshot>& out, bool walk_idle);
    Outcome read_threads(std::vector<ThreadSnapshot>& out, bool walk_idle, bool last_attempt);
    bool list_threads_if_due(bool force);
    bool reaches_known_base(const ThreadStateRef& thread, const std::vector<PyFrame>& frames) const;
    char scheduler_state(pid_t tid);
    const std::string& thread_name(pid_t tid);
    void name_python_threads(std::uint64_t interp, std::vector<ThreadSnapshot>& snapshots);
    pid_t kernel_tid(const ThreadStateRef& thread);
    WalkResult walk_running(const ThreadStateRef& listed, std::vector<PyFrame>& frames);
    void merge_native_stacks(std::vector<ThreadSnapshot>& snapshots);
    WalkResult read_thread(std::size_t index, pid_t tid, std::vector<PyFrame>& frames);
    void count_pause(std::chrono::nanoseconds duration);
    void count_cut_stack(const std::vector<PyFrame>& frames);
    std::uint64_t gil_holder(std::uint64_t interp);
    bool thread_exited(const ThreadStateRef& thread);
    std::uint32_t cpu_weight(pid_t tid, char state);
    std::uint32_t thread_cpu_weight(pid_t tid, char state);
    void join_interpreters(std::vector<ThreadSnapshot>& snapshots);
    void mark_unknown_subinterpreter_threads(std::vector<ThreadSnapshot>& snapshots);
    void find_threads_running_subinterpreters();
    const attach::MapEntry* stack_mapping(std::uint64_t address);

    PythonProcess& process_;
    attach::RangeCache pages_;
    // Code objects are read apart from the batch: one referenced by a frame cannot change while it
    // is, so reading it later does not tear the stack, and its pages stay out of the batch.
    attach::PageCache code_pages_;
    symbolize::CodeCache codes_;
    StackWalker walker_;
    GilReader gil_;
    std::function<void(std::vector<ThreadSnapshot>&)> inspect_;
    attach::Target& target_;
    std::unique_ptr<attach::ThreadSuspender> suspender_;
    std::map<pid_t, std::string> names_;
    std::map<pid_t, char> listed_states_;  // the last listing of the process's threads
    std::chrono::steady_clock::time_point listed_at_{};
    std::vector<std::pair<pid_t, char>> sample_states_;  // scheduler states read for this sample (few threads)
    std::vector<pid_t> waiting_tids_;                    // of this sample, sorted: threads a pause leaves alone
    std::vector<std::pair<pid_t, std::uint32_t>> sample_weights_;  // cpu_weight() of this sample
    // Per thread (see cpu_weight()): the CPU time already counted, when it was first seen, and
    // whether it is counted by its CPU time (else, while young, by its chance of running).
    struct CpuShare {
        std::uint64_t counted = 0;
        std::chrono::steady_clock::time_point first_seen;
        bool counting_time = false;
    };
    std::unordered_map<pid_t, CpuShare> cpu_shares_;
    bool cpu_baselines_taken_ = false;
    std::minstd_rand random_{std::random_device{}()};
    bool walk_idle_ = false;  // of the current take()
    std::chrono::steady_clock::time_point first_take_{};
    std::uint64_t takes_ = 0;
    std::uint64_t mean_interval_ns_ = 0;  // between samples so far
    bool read_gil_ = true;
    bool list_failed_ = false;  // the last read_threads() could not read the thread list
    static constexpr std::size_t kCodePages = 64;
    static constexpr int kMaxRereads = 8;
    static constexpr auto kInterpreterRecheck = std::chrono::milliseconds(100);
    static constexpr std::size_t kMaxRememberedThreads = 4096;
    std::uint64_t interp_ = 0;
    std::chrono::steady_clock::time_point interp_read_at_{};
    StackBases bases_;  // by thread state
    ThreadNames python_names_;
    std::vector<std::uint64_t> idents_;
    std::map<std::uint64_t, pid_t> tids_by_pthread_;  // before 3.11, where thread states lack the tid
    std::vector<ThreadStateRef> threads_;
    std::vector<ThreadStateRef> listed_again_;
    std::vector<pid_t> thread_tids_;            // the kernel tid of the thread running each, 0 when unknown
    std::vector<std::uint64_t> thread_idents_;  // its threading ident (pthread id), for its Python name
    std::vector<bool> thread_unknown_;          // a sub-interpreter's state whose running thread cannot be told
    std::vector<std::pair<std::uint64_t, std::uint64_t>> gil_holders_;  // interpreter -> holder, this sample
    std::vector<attach::MapEntry> maps_;  // read when sub-interpreters need their threads found
    std::chrono::steady_clock::time_point maps_read_at_{};
    std::unique_ptr<NativeStacks> native_;
    std::vector<NativeCapture> captures_;
    std::vector<EvalCalls> eval_calls_;
    bool stop_each_thread_ = false;
    std::chrono::nanoseconds pause_total_{0};
    std::uint64_t pauses_ = 0;
    SnapshotStats stats_;
};

}  // namespace pysample::sampler
