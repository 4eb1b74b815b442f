// The asyncio tasks of a process: each task's name, state, the coroutine frames where it is
// suspended, what it awaits, and the event loop and thread it belongs to.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <set>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "model/coroutines.hpp"
#include "model/pydict.hpp"
#include "model/python_process.hpp"
#include "model/stack_walker.hpp"

namespace pysample::sampler {

enum class TaskState { Running, Waiting, Scheduled, Done };
std::string_view describe(TaskState state);

// How a task waits: on another task, on a gather of tasks, on the end of a TaskGroup's tasks, on
// asyncio.wait's waiter, on another future, or on something else.
enum class AwaitKind { None, Task, Gather, TaskGroup, Wait, Future, Other };
std::string_view describe(AwaitKind kind);

struct AsyncTask {
    std::uint64_t address = 0;
    std::uint64_t loop = 0;
    std::string name;      // as the target holds it: escape before printing
    std::string function;  // its coroutine's function (qualified name from 3.11), empty when unreadable
    const symbolize::CodeInfo* code = nullptr;  // its coroutine's code, nullptr when unreadable
    TaskState state = TaskState::Scheduled;
    // Where its coroutines are suspended, outermost first; none while it runs (its frames are
    // then on its thread's stack) or before its coroutine starts.
    std::vector<PyFrame> frames;
    std::uint64_t coroutine_frame = 0;  // the frame of its own coroutine, where it begins on a stack
    AwaitKind awaits = AwaitKind::None;
    std::uint64_t awaited_object = 0;         // the future (or other object) it awaits
    std::string awaits_type;                  // the type of the object it awaits
    std::vector<std::uint64_t> awaits_tasks;  // the tasks among what it awaits
    std::vector<std::uint64_t> awaited_by;    // the tasks awaiting it
    bool chain_unreadable = false;            // its coroutine chain stopped at a link that could not be read
};

struct EventLoop {
    std::uint64_t address = 0;
    std::string type;
    std::uint64_t thread_state = 0;  // the thread running it; 0 when no thread runs it now
    std::uint64_t thread_id = 0;     // that thread's pthread id
    std::uint64_t native_id = 0;     // and its kernel tid (3.8+)
    std::uint64_t running_task = 0;  // the task whose step runs now, 0 between steps
    std::vector<std::size_t> tasks;  // indexes in AsyncioState::tasks
};

// What a read found of an interpreter's asyncio: the types tasks are told by, and (up to 3.13)
// the dict of the task each loop runs.
struct AsyncioContext {
    std::uint64_t task = 0;           // _asyncio.Task
    std::uint64_t gathering = 0;      // asyncio.tasks._GatheringFuture
    std::uint64_t task_group = 0;     // asyncio.taskgroups.TaskGroup (3.11+)
    std::uint64_t current_tasks = 0;  // asyncio.tasks._current_tasks (to 3.13)
};

struct AsyncioDebugOffsets;

struct AsyncioState {
    bool available = false;
    bool imported = false;  // asyncio is imported (in some interpreter)
    std::string reason;     // why not, when not available
    std::vector<AsyncTask> tasks;
    std::vector<EventLoop> loops;
    std::uint64_t unreadable = 0;                                    // tasks found but not read
    std::unordered_map<std::uint64_t, AsyncioContext> interpreters;  // by interpreter address
    std::shared_ptr<const AsyncioDebugOffsets> debug;                // 3.14+

    const AsyncTask* task(std::uint64_t address) const;
    // The task under which a task is shown: the first of those awaiting it that this read knows.
    const AsyncTask* parent_of(const AsyncTask& task) const;
    std::unordered_map<std::uint64_t, std::size_t> index;
};

// The layout that 3.14+ publish in the _asyncio module's .AsyncioDebug section.
struct AsyncioDebugOffsets {
    std::int64_t task_name = -1;
    std::int64_t task_awaited_by = -1;
    std::int64_t task_is_task = -1;
    std::int64_t task_awaited_by_is_set = -1;
    std::int64_t task_coro = -1;
    std::int64_t task_node = -1;
    std::int64_t interp_tasks_head = -1;
    std::int64_t thread_running_loop = -1;
    std::int64_t thread_running_task = -1;
    std::int64_t thread_tasks_head = -1;
};
// Parses the section's bytes; nullopt when they do not have its shape.
std::optional<AsyncioDebugOffsets> parse_asyncio_debug_offsets(std::span<const std::uint8_t> section);

class AsyncioReader {
public:
    // Whole reads go through a page cache, the pages of the last read fetched first in one batch;
    // a reader of one task at a time reads just the bytes it needs.
    enum class Reads { Paged, Direct };
    // Reads through `memory`: the process's own, or another reader of it for another thread.
    AsyncioReader(PythonProcess& process, attach::Memory& memory, symbolize::CodeCache& codes,
                  Reads reads = Reads::Paged);

    // The tasks of every interpreter the threads belong to.
    AsyncioState read(const std::vector<ThreadStateRef>& threads);

    // The task a thread's loop runs now (0 when none), with what an earlier read() (maybe of another
    // reader) found.
    std::uint64_t running_task(const ThreadStateRef& thread, const AsyncioState& known);
    // One task read alone, with what an earlier read() found of its interpreter.
    std::optional<AsyncTask> read_one_task(std::uint64_t address, std::uint64_t interp, const AsyncioState& known);

    static constexpr std::size_t kMaxTasks = 1 << 17;
    static constexpr std::size_t kCachedPages = 2048;

private:
    struct RunningLoop {
        std::uint64_t loop = 0;
        std::uint64_t task = 0;
    };
    void read_interpreter(std::uint64_t interp, const std::vector<ThreadStateRef>& threads, AsyncioState& out);
    std::optional<std::uint64_t> module(std::uint64_t interp, std::string_view name);
    bool find_debug_offsets();
    void list_tasks_from_sets(std::uint64_t tasks_module, std::vector<std::uint64_t>& out);
    void list_tasks_from_lists(std::uint64_t interp, const std::vector<ThreadStateRef>& threads,
                               std::vector<std::uint64_t>& out);
    void linked_tasks(std::uint64_t head, std::vector<std::uint64_t>& out);
    RunningLoop running_loop(const ThreadStateRef& thread, std::uint64_t current_tasks);
    std::optional<AsyncTask> read_task(std::uint64_t task, const AsyncioContext& types);
    std::string task_name(std::uint64_t name_object);
    void classify_awaited(std::uint64_t awaited, const AsyncioContext& types, AsyncTask& task);
    void link_callbacks(const AsyncioContext& types, std::vector<AsyncTask>& tasks, std::size_t first);
    void link_awaited_by(const AsyncioContext& types, std::vector<AsyncTask>& tasks, std::size_t first);
    std::vector<std::uint64_t> callbacks(std::uint64_t future);
    bool is_none(std::uint64_t object) const { return object == 0 || object == process_.builtins().none; }

    PythonProcess& process_;
    const PythonLayout& layout_;
    const VersionFacts& facts_;
    // The tasks' objects are scattered over the heap: each read is copied a page at a time, the
    // pages the last read used first, in one batch.
    attach::PageCache pages_;
    bool paged_;
    attach::Memory& source_;  // pages_, or the memory itself
    ObjectReader objects_;
    StackWalker walker_;
    CoroutineReader coroutines_;
    std::shared_ptr<const AsyncioDebugOffsets> debug_;
    bool debug_searched_ = false;
    std::vector<std::uint64_t> scratch_;
    std::vector<DictItem> dict_scratch_;
    std::unordered_map<std::uint64_t, std::uint64_t> awaited_futures_;  // future -> the task awaiting it
    std::set<std::pair<std::uint64_t, std::uint64_t>> awaits_pairs_;    // (task, task it awaits) of this read
};

}  // namespace pysample::sampler
