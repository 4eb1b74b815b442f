#include "engine/async_stacks.hpp"

#include <sched.h>
#include <spdlog/spdlog.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <set>

namespace pysample::sampler {
namespace {

constexpr std::size_t kMaxLabelIds = 1 << 16;
constexpr std::size_t kMaxAwaitDepth = 256;

}  // namespace

AsyncStacks::AsyncStacks(PythonProcess& process, bool count_waiting, Markers markers)
    : process_(process),
      count_waiting_(count_waiting),
      markers_(markers),
      memory_(process.target().open_memory()),
      codes_(*memory_, process.code_layout(), process.code_type_address()),
      reader_(process, *memory_, codes_),
      peek_codes_(process.memory(), process.code_layout(), process.code_type_address()),
      peek_reader_(process, process.memory(), peek_codes_, AsyncioReader::Reads::Direct),
      reader_thread_([this](std::stop_token stop) { run_reader(stop); }) {}

AsyncStacks::~AsyncStacks() {
    reader_thread_.request_stop();
    states_handed_.notify_all();
}

void AsyncStacks::read(const std::vector<ThreadStateRef>& states) {
    {
        std::lock_guard lock(mutex_);
        states_ = states;
        ++states_serial_;
    }
    states_handed_.notify_one();
}

// Wakes for each sample's thread states: looks at the tasks the loops run (at most every
// kRunningCheckInterval) and reads every task when due.
void AsyncStacks::run_reader(std::stop_token stop) {
    bool idle_priority = take_idle_priority(false);  // the first read is awaited by the first samples
    std::vector<ThreadStateRef> states;
    std::uint64_t seen_serial = 0;
    auto running_checked = std::chrono::steady_clock::time_point{};
    while (!stop.stop_requested()) {
        {
            std::unique_lock lock(mutex_);
            if (!states_handed_.wait(lock, stop, [&] { return states_serial_ != seen_serial; })) break;
            seen_serial = states_serial_;
            states = states_;
        }
        auto now = std::chrono::steady_clock::now();
        if (last_read_ != nullptr && now - running_checked >= kRunningCheckInterval) {
            unknown_running_ = std::any_of(states.begin(), states.end(), [&](const ThreadStateRef& state) {
                std::uint64_t running = reader_.running_task(state, last_read_->state);
                return running != 0 && last_read_->state.task(running) == nullptr;
            });
            running_checked = now;
        }
        if (!read_due(now)) continue;
        // On a machine with no time to spare the reader is starved: the first read, and one that is
        // late, run at a low but normal priority.
        bool late = last_read_ == nullptr || now - read_at_ > kLateRead;
        if (late == idle_priority) idle_priority = take_idle_priority(!late);
        auto published = read_all(states);
        published->read_at = now;
        read_cost_ = std::chrono::steady_clock::now() - now;
        read_at_ = now;
        spdlog::debug("pid {}: asyncio: {} tasks read in {} us", process_.pid(), published->state.tasks.size(),
                      std::chrono::duration_cast<std::chrono::microseconds>(read_cost_).count());
        last_read_ = published;
        unknown_running_ = false;  // the read has the tasks running then
        {
            std::lock_guard lock(mutex_);
            published_ = std::move(published);
        }
        first_read_.notify_all();
    }
}

// Below the sampling thread, so that a long read never delays a sample on a busy core: on time no
// other thread wants (SCHED_IDLE), else at a low priority. Returns whether it runs as SCHED_IDLE.
bool AsyncStacks::take_idle_priority(bool idle) {
    ::sched_param none{};
    if (idle && ::sched_setscheduler(0, SCHED_IDLE, &none) == 0) return true;
    if (!idle) ::sched_setscheduler(0, SCHED_OTHER, &none);
    if (::setpriority(PRIO_PROCESS, static_cast<id_t>(::gettid()), kReaderNice) != 0) {
        spdlog::debug("asyncio: reader priority not lowered: {}", std::strerror(errno));
    }
    return false;
}

// Spaced to keep the reader's share of a core, and sooner when a loop runs a task not seen yet.
bool AsyncStacks::read_due(std::chrono::steady_clock::time_point now) {
    if (last_read_ == nullptr) return true;
    auto since = now - read_at_;
    auto spacing = std::min<std::chrono::nanoseconds>(
        std::chrono::duration_cast<std::chrono::nanoseconds>(read_cost_ / kMaxReadShare), kMaxReadInterval);
    if (since >= spacing) return true;
    return unknown_running_ && since >= 2 * read_cost_;
}

std::shared_ptr<AsyncStacks::Published> AsyncStacks::read_all(const std::vector<ThreadStateRef>& states) {
    codes_.new_sample();
    auto published = std::make_shared<Published>();
    published->state = reader_.read(states);
    published->generation = (last_read_ != nullptr ? last_read_->generation : 0) + 1;
    auto& state = published->state;
    // The frames point to the reader's code cache, which its next reads may change: they get copies
    // of their own.
    std::unordered_map<const symbolize::CodeInfo*, const symbolize::CodeInfo*> copies;
    for (auto& task : state.tasks) {
        own_frames(*published, copies, task.frames);
        if (task.code != nullptr) task.code = own_code(*published, copies, task.code);
    }
    for (std::size_t i = 0; i < state.tasks.size(); ++i) {
        const auto& task = state.tasks[i];
        if (task.coroutine_frame != 0 && task.state != TaskState::Done)
            published->task_by_frame[task.coroutine_frame] = i;
    }
    for (std::size_t i = 0; i < state.loops.size(); ++i) {
        if (state.loops[i].thread_state != 0) published->loop_by_thread[state.loops[i].thread_state] = i;
    }
    published->above.resize(state.tasks.size());
    published->waiting_stack.resize(state.tasks.size());
    for (std::size_t i = 0; i < state.tasks.size(); ++i) {
        const auto& task = state.tasks[i];
        append_awaiting(*published, task, published->above[i]);
        auto& waiting = published->waiting_stack[i];
        waiting.assign(task.frames.rbegin(), task.frames.rend());
        waiting.insert(waiting.end(), published->above[i].begin(), published->above[i].end());
    }
    return published;
}

void AsyncStacks::own_frames(Published& published,
                             std::unordered_map<const symbolize::CodeInfo*, const symbolize::CodeInfo*>& copies,
                             std::vector<PyFrame>& frames) {
    for (auto& frame : frames) {
        if (frame.code != nullptr) frame.code = own_code(published, copies, frame.code);
    }
}

const symbolize::CodeInfo* AsyncStacks::own_code(
    Published& published, std::unordered_map<const symbolize::CodeInfo*, const symbolize::CodeInfo*>& copies,
    const symbolize::CodeInfo* code) {
    auto [it, added] = copies.try_emplace(code, nullptr);
    if (added) {
        auto copy = std::make_unique<symbolize::CodeInfo>(*code);
        copy->lines.clear();
        copy->linetable.clear();
        it->second = copy.get();
        published.codes.push_back(std::move(copy));
    }
    return it->second;
}

// A frame at a task's coroutine frame address is that coroutine's only if it runs the same code:
// since the read, the task may have ended and its memory gone to another frame or coroutine.
bool AsyncStacks::runs_code_of(const PyFrame& frame, const AsyncTask& task) {
    return task.code != nullptr && frame.code->firstlineno == task.code->firstlineno &&
           frame.code->function == task.code->function && frame.code->filename == task.code->filename;
}

// "<task fetcher-1>" (by coroutine: "<task fetch>"), and how many tasks await it when more than
// one does: it is shown under one.
const FrameLabel* AsyncStacks::task_label(Published& published, const AsyncTask& task) {
    bool by_coroutine = markers_ == Markers::Coroutine && !task.function.empty();
    std::string text = "<task " + (by_coroutine ? task.function : task.name);
    if (task.awaited_by.size() > 1) text += " (awaited by " + std::to_string(task.awaited_by.size()) + ")";
    text += ">";
    std::uint32_t id = label_id(label_ids_, text);
    published.labels.push_back(std::make_unique<FrameLabel>(FrameLabel{std::move(text), id}));
    return published.labels.back().get();
}

std::uint32_t AsyncStacks::label_id(std::unordered_map<std::string, std::uint32_t>& ids, const std::string& text) {
    if (ids.size() > kMaxLabelIds) ids.clear();
    auto [it, added] = ids.try_emplace(text, 0);
    if (added) it->second = next_label_++;
    return it->second;
}

void AsyncStacks::append_awaiting(Published& published, const AsyncTask& task, std::vector<PyFrame>& frames) {
    const AsyncTask* current = &task;
    std::set<std::uint64_t> seen;
    for (std::size_t depth = 0; current != nullptr && depth < kMaxAwaitDepth; ++depth) {
        if (!seen.insert(current->address).second) break;  // tasks awaiting each other
        PyFrame marker;
        marker.label = task_label(published, *current);
        frames.push_back(marker);
        const AsyncTask* parent = published.state.parent_of(*current);
        if (parent != nullptr) frames.insert(frames.end(), parent->frames.rbegin(), parent->frames.rend());
        current = parent;
    }
}

AsyncStats AsyncStacks::stats() const {
    AsyncStats out = counts_;
    std::shared_ptr<const Published> last;
    {
        std::lock_guard lock(mutex_);
        last = published_;
    }
    if (last != nullptr) {
        out.reads = last->generation;
        out.tasks = last->state.tasks.size();
        out.tasks_unreadable = last->state.unreadable;
        out.available = last->state.available;
        out.reason = last->state.reason;
    } else {
        out.reason = "the tasks were not read yet";
    }
    return out;
}

void AsyncStacks::rebuild(std::vector<ThreadSnapshot>& snapshots, const std::vector<ThreadStateRef>& states) {
    waiting_count_ = 0;
    {
        std::unique_lock lock(mutex_);
        if (current_ == nullptr) first_read_.wait_for(lock, kFirstReadWait, [&] { return published_ != nullptr; });
        if (published_ != current_) current_ = published_;
    }
    if (current_ == nullptr || !current_->state.available) return;
    const Published& published = *current_;
    auto age =
        std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - published.read_at);
    counts_.oldest_read_ms = std::max<std::uint64_t>(counts_.oldest_read_ms, static_cast<std::uint64_t>(age.count()));
    peek_labels_.clear();
    peek_codes_.new_sample();
    for (std::size_t i = 0; i < snapshots.size() && i < states.size(); ++i) {
        auto loop = published.loop_by_thread.find(states[i].address);
        if (loop == published.loop_by_thread.end()) continue;
        auto& thread = snapshots[i];
        std::uint64_t running = 0;
        if (thread.walked && !thread.frames.empty() && !thread.joined) {
            running = splice_tasks(published, states[i], thread);
            if (thread.weight > 0) ++(running != 0 ? counts_.task_samples : counts_.outside_tasks);
        }
        if (count_waiting_) add_waiting_tasks(published, published.state.loops[loop->second], thread, running);
    }
    filled_generation_ = published.generation;
}

// From the innermost frame out, each task whose coroutine's frame is on the stack takes the frames
// above it and its marker; the first with a task awaiting it brings that task's chain and ends
// the stack. A task with none may have been run by another one's step (an eager task started in
// create_task, a loop run inside a task): the scan goes on below it. The loop's plumbing below
// the last task is dropped. The running task (the loop's current one) is found first: one newer
// than the last read is read alone, and marked without the tasks awaiting it. Returns the
// running task's address; 0, with the stack unchanged, when no task runs on it.
std::uint64_t AsyncStacks::splice_tasks(const Published& published, const ThreadStateRef& state,
                                        ThreadSnapshot& thread) {
    auto& frames = thread.frames;
    const auto* fresh = running_task(published, state, frames);
    spliced_.clear();
    std::size_t from = 0;
    std::uint64_t innermost = 0;
    if (fresh != nullptr) {
        auto begins = coroutine_frame_of(frames, *fresh);
        if (begins != frames.end()) {
            from = static_cast<std::size_t>(begins - frames.cbegin()) + 1;
            spliced_.assign(frames.cbegin(), begins + 1);
            PyFrame marker;
            marker.label = new_task_label(*fresh);
            spliced_.push_back(marker);
            innermost = fresh->address;
            if (thread.weight > 0) ++counts_.new_task_samples;
        }
    }
    std::size_t kept = spliced_.size();
    for (std::size_t k = from; k < frames.size(); ++k) {
        const auto& frame = frames[k];
        if (frame.code == nullptr) continue;
        auto found = published.task_by_frame.find(frame.address);
        if (found == published.task_by_frame.end()) continue;
        const auto& task = published.state.tasks[found->second];
        if (!runs_code_of(frame, task)) continue;
        spliced_.insert(spliced_.end(), frames.begin() + static_cast<std::ptrdiff_t>(from),
                        frames.begin() + static_cast<std::ptrdiff_t>(k) + 1);
        const auto& above = published.above[found->second];
        bool awaited = published.state.parent_of(task) != nullptr;
        spliced_.insert(spliced_.end(), above.begin(), awaited ? above.end() : above.begin() + 1);
        kept = spliced_.size();
        from = k + 1;
        if (innermost == 0) innermost = task.address;
        if (awaited) break;
    }
    if (innermost == 0) return 0;
    spliced_.resize(kept);
    frames.swap(spliced_);
    return innermost;
}

// The task the thread's loop runs, when the last read does not know it (its stack then shows no
// task the read knows, or a task started eagerly inside another's step). A task the read knows by
// its address is read again when its coroutine's frame is not on the stack: a task that ended
// leaves its address to the next one, often a task started at once, like it. Looked at most every
// kRunningCheckInterval per thread while the last answer still fits the stack.
const AsyncTask* AsyncStacks::running_task(const Published& published, const ThreadStateRef& state,
                                           const std::vector<PyFrame>& frames) {
    auto now = std::chrono::steady_clock::now();
    auto& seen = running_seen_[state.address];
    if (seen.generation == published.generation && now - seen.at < kRunningCheckInterval &&
        (!seen.task || begins_on(frames, *seen.task))) {
        return seen.task ? &*seen.task : nullptr;
    }
    seen.at = now;
    seen.generation = published.generation;
    seen.task.reset();
    std::uint64_t running = peek_reader_.running_task(state, published.state);
    if (running == 0) return nullptr;
    const AsyncTask* known = published.state.task(running);
    if (known != nullptr && begins_on(frames, *known)) return nullptr;
    seen.task = peek_reader_.read_one_task(running, state.interpreter, published.state);
    // The task the read knows, on a stack read before the loop switched to it: nothing new.
    bool same_as_known = seen.task && known != nullptr && seen.task->coroutine_frame == known->coroutine_frame;
    if (!seen.task || seen.task->coroutine_frame == 0 || seen.task->code == nullptr || same_as_known) {
        seen.task.reset();
        return nullptr;
    }
    // Kept for later samples, past the code cache's next sample.
    seen.code = std::make_unique<symbolize::CodeInfo>(*seen.task->code);
    seen.code->lines.clear();
    seen.code->linetable.clear();
    seen.task->code = seen.code.get();
    return &*seen.task;
}

std::vector<PyFrame>::const_iterator AsyncStacks::coroutine_frame_of(const std::vector<PyFrame>& frames,
                                                                     const AsyncTask& task) {
    return std::find_if(frames.begin(), frames.end(), [&](const PyFrame& frame) {
        return frame.code != nullptr && frame.address == task.coroutine_frame && runs_code_of(frame, task);
    });
}

bool AsyncStacks::begins_on(const std::vector<PyFrame>& frames, const AsyncTask& task) {
    return coroutine_frame_of(frames, task) != frames.end();
}

const FrameLabel* AsyncStacks::new_task_label(const AsyncTask& task) {
    bool by_coroutine = markers_ == Markers::Coroutine && !task.function.empty();
    std::string text = "<task " + (by_coroutine ? task.function : task.name) + ">";
    std::uint32_t id = label_id(peek_label_ids_, text);
    peek_labels_.push_back(std::make_unique<FrameLabel>(FrameLabel{std::move(text), id}));
    return peek_labels_.back().get();
}

// Each task of the loop keeps its slot until the next whole read, its stack copied once per read;
// the running task's slot counts for nothing.
void AsyncStacks::add_waiting_tasks(const Published& published, const EventLoop& loop, const ThreadSnapshot& thread,
                                    std::uint64_t running) {
    bool fresh = filled_generation_ != published.generation;
    for (auto index : loop.tasks) {
        const auto& task = published.state.tasks[index];
        if (task.state == TaskState::Done) continue;
        if (added_.size() <= waiting_count_) added_.emplace_back();
        ThreadSnapshot& waiting = added_[waiting_count_++];
        waiting.id = thread.id;
        waiting.namespace_id = thread.namespace_id;
        if (waiting.name != thread.name) waiting.name = thread.name;
        waiting.idle = true;
        bool runs = task.state == TaskState::Running || task.address == running;
        waiting.weight = runs ? 0 : 1;
        waiting.walked = true;
        waiting.holds_gil = false;
        waiting.joined = false;
        waiting.interpreter = thread.interpreter;
        waiting.result = WalkResult::Ok;
        waiting.native = MergeResult::Merged;
        if (fresh || waiting.task != task.address) {
            waiting.task = task.address;
            waiting.frames.assign(published.waiting_stack[index].begin(), published.waiting_stack[index].end());
        }
        waiting.stack_version = published.generation;
        if (!runs) ++counts_.waiting_samples;
    }
}

}  // namespace pysample::sampler
