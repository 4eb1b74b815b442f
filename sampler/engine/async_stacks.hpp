// `--async` for record and top: a thread's stack that runs an asyncio task is rebuilt along the
// task's await chain (the awaiting tasks' coroutine frames above its own, each task introduced by
// a marker frame), without the event loop's plumbing between them; in wall-clock mode every
// waiting task is also counted, under its thread, where it waits.
//
// Reading every task takes time that grows with their number (about 3 us each), so it is done on
// a thread of its own, beside the sampling, which never waits for it: each sample uses the last
// whole read. The reader spaces its reads to use at most kMaxReadShare of a core, reads at least
// every kMaxReadInterval, and reads at once when a loop runs a task it has not seen.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <stop_token>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "engine/snapshot.hpp"
#include "model/asyncio_tasks.hpp"

namespace pysample::sampler {

struct AsyncStats {
    std::uint64_t task_samples = 0;      // thread stacks rebuilt along their running task's chain
    std::uint64_t new_task_samples = 0;  // of them, of a task newer than the last read: its marker alone
    std::uint64_t outside_tasks = 0;     // stacks of loop threads that ran no task (callbacks, the loop)
    std::uint64_t waiting_samples = 0;   // waiting tasks counted (wall-clock mode)
    std::uint64_t oldest_read_ms = 0;    // the age of the oldest read a sample used
    std::uint64_t reads = 0;             // times the tasks were read whole
    std::uint64_t tasks_unreadable = 0;  // in the last read
    std::size_t tasks = 0;               // in the last read
    bool available = false;
    std::string reason;  // why no task was read, when none could be
};

class AsyncStacks {
public:
    // How a task's marker names it: by the task's name, or by its coroutine's function, which
    // merges the tasks that run the same code (a task per request).
    enum class Markers { Name, Coroutine };
    // `count_waiting`: wall-clock mode, where waiting tasks count too.
    AsyncStacks(PythonProcess& process, bool count_waiting, Markers markers = Markers::Name);
    ~AsyncStacks();
    AsyncStacks(const AsyncStacks&) = delete;
    AsyncStacks& operator=(const AsyncStacks&) = delete;

    // Hands the reader the thread states of this sample.
    void read(const std::vector<ThreadStateRef>& states);
    // Rebuilds the snapshots of the threads that run a task and, in wall-clock mode, makes one for
    // each waiting task (waiting()), from the last whole read.
    void rebuild(std::vector<ThreadSnapshot>& snapshots, const std::vector<ThreadStateRef>& states);
    // The tasks of the last rebuild(), each under its loop's thread (ThreadSnapshot::task); the ones
    // not waiting (running) count for nothing (weight 0).
    std::span<const ThreadSnapshot> waiting() const { return {added_.data(), waiting_count_}; }
    AsyncStats stats() const;

    static constexpr double kMaxReadShare = 0.1;
    static constexpr std::chrono::milliseconds kMaxReadInterval{200};
    // How often the reader looks at the task each loop runs, between whole reads.
    static constexpr std::chrono::milliseconds kRunningCheckInterval{1};
    static constexpr int kReaderNice = 10;
    // A read this late runs at the low but normal priority, not only on idle time.
    static constexpr std::chrono::seconds kLateRead{1};
    // The first samples wait this long at most for the first read, rather than go unrebuilt.
    static constexpr std::chrono::seconds kFirstReadWait{2};

private:
    // A whole read, with what the samples need of it. Its frames point to code and labels it owns:
    // it lives as long as a sample uses it, whatever the reader does meanwhile.
    struct Published {
        AsyncioState state;
        std::unordered_map<std::uint64_t, std::size_t> task_by_frame;   // coroutine frame -> task index
        std::unordered_map<std::uint64_t, std::size_t> loop_by_thread;  // thread state -> loop index
        // Per task, innermost first: its marker and the frames and markers of the tasks awaiting
        // it, which go above its frames; and its whole stack while it waits.
        std::vector<std::vector<PyFrame>> above;
        std::vector<std::vector<PyFrame>> waiting_stack;
        std::vector<std::unique_ptr<symbolize::CodeInfo>> codes;
        std::vector<std::unique_ptr<FrameLabel>> labels;
        std::uint64_t generation = 0;
        std::chrono::steady_clock::time_point read_at{};
    };

    void run_reader(std::stop_token stop);
    static bool take_idle_priority(bool idle);
    bool read_due(std::chrono::steady_clock::time_point now);
    std::shared_ptr<Published> read_all(const std::vector<ThreadStateRef>& states);
    void own_frames(Published& published,
                    std::unordered_map<const symbolize::CodeInfo*, const symbolize::CodeInfo*>& copies,
                    std::vector<PyFrame>& frames);
    const symbolize::CodeInfo* own_code(
        Published& published, std::unordered_map<const symbolize::CodeInfo*, const symbolize::CodeInfo*>& copies,
        const symbolize::CodeInfo* code);
    static bool runs_code_of(const PyFrame& frame, const AsyncTask& task);
    const FrameLabel* task_label(Published& published, const AsyncTask& task);
    void append_awaiting(Published& published, const AsyncTask& task, std::vector<PyFrame>& frames);
    void add_waiting_tasks(const Published& published, const EventLoop& loop, const ThreadSnapshot& thread,
                           std::uint64_t running);
    std::uint64_t splice_tasks(const Published& published, const ThreadStateRef& state, ThreadSnapshot& thread);
    const FrameLabel* new_task_label(const AsyncTask& task);
    const AsyncTask* running_task(const Published& published, const ThreadStateRef& state,
                                  const std::vector<PyFrame>& frames);
    static std::vector<PyFrame>::const_iterator coroutine_frame_of(const std::vector<PyFrame>& frames,
                                                                   const AsyncTask& task);
    static bool begins_on(const std::vector<PyFrame>& frames, const AsyncTask& task);
    std::uint32_t label_id(std::unordered_map<std::string, std::uint32_t>& ids, const std::string& text);

    PythonProcess& process_;
    bool count_waiting_;
    Markers markers_;

    // The reader's own, used on its thread only.
    std::unique_ptr<attach::Memory> memory_;
    symbolize::CodeCache codes_;
    AsyncioReader reader_;
    bool unknown_running_ = false;                              // a loop runs a task the last read does not know
    std::unordered_map<std::string, std::uint32_t> label_ids_;  // a label's text keeps its id
    std::chrono::steady_clock::time_point read_at_{};
    std::chrono::nanoseconds read_cost_{0};
    std::shared_ptr<Published> last_read_;  // the reader's latest, for checking running tasks against

    // Shared with the sampling thread.
    mutable std::mutex mutex_;
    std::condition_variable_any states_handed_;
    std::condition_variable first_read_;
    std::vector<ThreadStateRef> states_;
    std::uint64_t states_serial_ = 0;  // counts the samples that handed states
    std::shared_ptr<const Published> published_;

    std::atomic<std::uint32_t> next_label_{1};  // label ids, unique across both threads

    // The sampling thread's.
    std::shared_ptr<const Published> current_;
    symbolize::CodeCache peek_codes_;  // of the tasks read alone
    AsyncioReader peek_reader_;
    std::unordered_map<std::string, std::uint32_t> peek_label_ids_;
    std::vector<std::unique_ptr<FrameLabel>> peek_labels_;  // of this sample's stacks
    std::vector<PyFrame> spliced_;
    struct RunningSeen {
        std::chrono::steady_clock::time_point at{};
        std::uint64_t generation = 0;
        std::optional<AsyncTask> task;              // a running task the read did not know
        std::unique_ptr<symbolize::CodeInfo> code;  // its coroutine's code
    };
    std::unordered_map<std::uint64_t, RunningSeen> running_seen_;  // by thread state
    std::vector<ThreadSnapshot> added_;                            // storage kept from sample to sample
    std::size_t waiting_count_ = 0;
    std::uint64_t filled_generation_ = 0;  // the read whose stacks the slots of added_ hold
    AsyncStats counts_;                    // the sampling thread's counts

    std::jthread reader_thread_;  // last: started once everything above exists
};

}  // namespace pysample::sampler
