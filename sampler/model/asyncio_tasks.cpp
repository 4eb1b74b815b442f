#include "model/asyncio_tasks.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cstring>
#include <map>
#include <set>

#include "attach/error.hpp"
#include "attach/maps.hpp"
#include "symbolize/elf.hpp"

namespace pysample::sampler {
namespace {

constexpr std::size_t kMaxNameChars = 256;
constexpr std::size_t kMaxChildren = 1 << 14;
constexpr std::size_t kMaxCallbacks = 1 << 10;
constexpr std::int32_t kStatePending = 0;  // fut_state: STATE_PENDING, then CANCELLED and FINISHED

void add_unique(std::vector<std::uint64_t>& list, std::uint64_t value) {
    if (std::find(list.begin(), list.end(), value) == list.end()) list.push_back(value);
}

}  // namespace

std::string_view describe(TaskState state) {
    switch (state) {
        case TaskState::Running: return "running";
        case TaskState::Waiting: return "waiting";
        case TaskState::Scheduled: return "scheduled";
        case TaskState::Done: return "done";
    }
    return "?";
}

std::string_view describe(AwaitKind kind) {
    switch (kind) {
        case AwaitKind::None: return "none";
        case AwaitKind::Task: return "task";
        case AwaitKind::Gather: return "gather";
        case AwaitKind::TaskGroup: return "taskgroup";
        case AwaitKind::Wait: return "wait";
        case AwaitKind::Future: return "future";
        case AwaitKind::Other: return "other";
    }
    return "?";
}

const AsyncTask* AsyncioState::task(std::uint64_t address) const {
    auto found = index.find(address);
    return found == index.end() ? nullptr : &tasks[found->second];
}

const AsyncTask* AsyncioState::parent_of(const AsyncTask& awaited) const {
    for (auto address : awaited.awaited_by) {
        if (const auto* parent = task(address)) return parent;
    }
    return nullptr;
}

// The section is Py_AsyncioModuleDebugOffsets: three structs of 64-bit words, each starting with
// the size of the struct it describes. Task: size, task_name, task_awaited_by, task_is_task,
// task_awaited_by_is_set, task_coro, task_node. Interpreter state: size, asyncio_tasks_head.
// Thread state: size, asyncio_running_loop, asyncio_running_task, asyncio_tasks_head.
std::optional<AsyncioDebugOffsets> parse_asyncio_debug_offsets(std::span<const std::uint8_t> section) {
    constexpr std::size_t kWords = 13;
    if (section.size() < kWords * sizeof(std::uint64_t)) return std::nullopt;
    std::array<std::uint64_t, kWords> words{};
    std::memcpy(words.data(), section.data(), sizeof(words));
    auto within = [&](std::size_t word, std::size_t size_word) {
        return words[word] > 0 && words[word] < words[size_word] ? static_cast<std::int64_t>(words[word]) : -1;
    };
    AsyncioDebugOffsets out;
    out.task_name = within(1, 0);
    out.task_awaited_by = within(2, 0);
    out.task_is_task = within(3, 0);
    out.task_awaited_by_is_set = within(4, 0);
    out.task_coro = within(5, 0);
    out.task_node = within(6, 0);
    out.interp_tasks_head = within(8, 7);
    out.thread_running_loop = within(10, 9);
    out.thread_running_task = within(11, 9);
    out.thread_tasks_head = within(12, 9);
    if (out.task_coro < 0 || out.task_node < 0 || out.thread_tasks_head < 0 || out.thread_running_loop < 0) {
        return std::nullopt;
    }
    return out;
}

AsyncioReader::AsyncioReader(PythonProcess& process, attach::Memory& memory, symbolize::CodeCache& codes, Reads reads)
    : process_(process),
      layout_(process.layout()),
      facts_(process.facts()),
      pages_(memory, reads == Reads::Paged ? kCachedPages : 1),
      paged_(reads == Reads::Paged),
      source_(paged_ ? static_cast<attach::Memory&>(pages_) : memory),
      objects_(source_, process.layout(), process.code_layout(), process.pid()),
      walker_(process.layout(), source_, codes),
      coroutines_(objects_, walker_) {}

AsyncioState AsyncioReader::read(const std::vector<ThreadStateRef>& threads) {
    AsyncioState out;
    if (!facts_.reads_asyncio_tasks) {
        out.reason = "asyncio tasks are read for Python 3.8 and later; this process runs Python " +
                     process_.version().to_string();
        return out;
    }
    if (paged_) {
        pages_.clear();
        pages_.prefetch();
    }
    awaits_pairs_.clear();
    objects_.forget_heap_types();
    std::vector<std::uint64_t> interpreters;
    for (const auto& thread : threads) add_unique(interpreters, thread.interpreter);
    for (auto interp : interpreters) read_interpreter(interp, threads, out);
    spdlog::debug("pid {}: asyncio: {} pages read apart from the batch", process_.pid(), pages_.misses());
    if (!out.available && out.reason.empty()) out.reason = "asyncio is not imported";
    return out;
}

std::uint64_t AsyncioReader::running_task(const ThreadStateRef& thread, const AsyncioState& known) {
    auto context = known.interpreters.find(thread.interpreter);
    if (context == known.interpreters.end()) return 0;
    if (known.debug) debug_ = known.debug;
    if (paged_) pages_.clear();
    auto running = running_loop(thread, context->second.current_tasks);
    return is_none(running.loop) || is_none(running.task) ? 0 : running.task;
}

std::optional<AsyncTask> AsyncioReader::read_one_task(std::uint64_t address, std::uint64_t interp,
                                                      const AsyncioState& known) {
    auto context = known.interpreters.find(interp);
    if (context == known.interpreters.end()) return std::nullopt;
    if (known.debug) debug_ = known.debug;
    objects_.forget_heap_types();
    auto task = read_task(address, context->second);
    awaited_futures_.clear();
    return task;
}

std::optional<std::uint64_t> AsyncioReader::module(std::uint64_t interp, std::string_view name) {
    return objects_.imported_module(interp, name);
}

void AsyncioReader::read_interpreter(std::uint64_t interp, const std::vector<ThreadStateRef>& threads,
                                     AsyncioState& out) {
    auto tasks_module = module(interp, "asyncio.tasks");
    if (!tasks_module) return;
    out.imported = true;
    AsyncioContext types;
    types.task = objects_.module_global(*tasks_module, "_CTask").value_or(0);
    if (is_none(types.task)) {
        if (out.reason.empty()) out.reason = "asyncio runs without its C module _asyncio, whose tasks are read";
        return;
    }
    if (facts_.publishes_asyncio_debug_offsets && !find_debug_offsets()) {
        if (out.reason.empty()) out.reason = "the _asyncio module publishes no .AsyncioDebug section to read tasks by";
        return;
    }
    out.available = true;
    out.reason.clear();
    types.gathering = objects_.module_global(*tasks_module, "_GatheringFuture").value_or(0);
    if (auto groups = module(interp, "asyncio.taskgroups")) {
        types.task_group = objects_.module_global(*groups, "TaskGroup").value_or(0);
    }

    std::vector<std::uint64_t> found;
    if (debug_) {
        list_tasks_from_lists(interp, threads, found);
    } else {
        list_tasks_from_sets(*tasks_module, found);
    }
    std::uint64_t current_tasks = debug_ ? 0 : objects_.module_global(*tasks_module, "_current_tasks").value_or(0);
    types.current_tasks = current_tasks;
    out.interpreters[interp] = types;
    out.debug = debug_;

    std::size_t first = out.tasks.size();
    auto add = [&](std::uint64_t address) {
        if (out.index.count(address) != 0) return;
        std::optional<AsyncTask> task;
        if (out.tasks.size() < kMaxTasks) task = read_task(address, types);
        if (!task) {
            ++out.unreadable;
            return;
        }
        out.index.emplace(address, out.tasks.size());
        out.tasks.push_back(std::move(*task));
    };
    for (auto address : found) add(address);
    // A task awaited but not listed (an eager task that 3.14+ link nowhere while it starts) is read too.
    for (std::size_t i = first; i < out.tasks.size(); ++i) {
        for (std::size_t j = 0; j < out.tasks[i].awaits_tasks.size(); ++j) add(out.tasks[i].awaits_tasks[j]);
    }
    link_callbacks(types, out.tasks, first);
    link_awaited_by(types, out.tasks, first);

    std::map<std::uint64_t, std::size_t> loops;
    auto loop_index = [&](std::uint64_t loop) {
        auto [it, added] = loops.try_emplace(loop, out.loops.size());
        if (added) {
            EventLoop entry;
            entry.address = loop;
            entry.type = printable_name(objects_.type_name(loop).value_or("?"));
            out.loops.push_back(std::move(entry));
        }
        return it->second;
    };
    for (const auto& thread : threads) {
        if (thread.interpreter != interp) continue;
        auto running = running_loop(thread, current_tasks);
        if (is_none(running.loop)) continue;
        auto& loop = out.loops[loop_index(running.loop)];
        loop.thread_state = thread.address;
        loop.thread_id = thread.thread_id;
        loop.native_id = thread.native_id;
        loop.running_task = is_none(running.task) ? 0 : running.task;
    }
    for (std::size_t i = first; i < out.tasks.size(); ++i) {
        auto& task = out.tasks[i];
        auto& loop = out.loops[loop_index(task.loop)];
        loop.tasks.push_back(i);
        if (task.state != TaskState::Done && loop.running_task == task.address) task.state = TaskState::Running;
    }
}

// 3.14+: the section is in the _asyncio extension module, or in the interpreter's binary where
// the module is built in.
bool AsyncioReader::find_debug_offsets() {
    if (debug_) return true;
    std::vector<attach::MapEntry> maps;
    try {
        maps = process_.target().maps();
    } catch (const attach::Error& e) {
        spdlog::debug("pid {}: asyncio: maps unreadable: {}", process_.pid(), e.what());
        return false;
    }
    std::set<std::string> tried;
    for (const auto& mapping : maps) {
        if (mapping.path.empty() || mapping.path[0] != '/') continue;
        bool candidate =
            attach::base_name(mapping.path).rfind("_asyncio", 0) == 0 || mapping.path == process_.binary_path();
        if (!candidate || !tried.insert(mapping.path).second) continue;
        try {
            symbolize::ElfFile elf(process_.target().mapped_file(mapping));
            const auto* section = elf.section(".AsyncioDebug");
            if (section == nullptr) continue;
            auto parsed = parse_asyncio_debug_offsets(elf.section_data(*section));
            if (parsed) debug_ = std::make_shared<const AsyncioDebugOffsets>(*parsed);
            if (debug_) {
                spdlog::debug("pid {}: asyncio: layout from .AsyncioDebug of {}", process_.pid(), mapping.path);
                return true;
            }
        } catch (const std::exception& e) {
            spdlog::debug("pid {}: asyncio: {}: {}", process_.pid(), mapping.path, e.what());
        }
    }
    return false;
}

// Up to 3.13: asyncio.tasks keeps a WeakSet of the scheduled tasks (its `data`, a set of weak
// references) and, from 3.12, a plain set of the eager tasks that have not yet yielded.
void AsyncioReader::list_tasks_from_sets(std::uint64_t tasks_module, std::vector<std::uint64_t>& out) {
    if (auto weak_set = objects_.module_global(tasks_module, facts_.asyncio_task_set)) {
        auto data = objects_.attribute(*weak_set, "data");
        if (data && objects_.set_items(*data, scratch_, kMaxTasks)) {
            for (auto reference : scratch_) {
                auto referent = objects_.pointer_field(reference, layout_.weakref_object);
                if (referent && !is_none(*referent)) out.push_back(*referent);
            }
        }
    }
    if (!facts_.asyncio_eager_task_set.empty()) {
        auto eager = objects_.module_global(tasks_module, facts_.asyncio_eager_task_set);
        if (eager && objects_.set_items(*eager, scratch_, kMaxTasks))
            out.insert(out.end(), scratch_.begin(), scratch_.end());
    }
}

// 3.14+: each thread state heads a circular list of the native tasks created in it, and the
// interpreter one of those whose thread has ended.
void AsyncioReader::list_tasks_from_lists(std::uint64_t interp, const std::vector<ThreadStateRef>& threads,
                                          std::vector<std::uint64_t>& out) {
    for (const auto& thread : threads) {
        if (thread.interpreter == interp) linked_tasks(thread.address + debug_->thread_tasks_head, out);
    }
    if (debug_->interp_tasks_head >= 0)
        linked_tasks(interp + static_cast<std::uint64_t>(debug_->interp_tasks_head), out);
}

void AsyncioReader::linked_tasks(std::uint64_t head, std::vector<std::uint64_t>& out) {
    std::uint64_t node = 0;
    if (!source_.read_value(head, node)) return;
    std::size_t count = 0;
    while (node != 0 && node != head && count++ < kMaxTasks) {
        out.push_back(node - static_cast<std::uint64_t>(debug_->task_node));
        if (!source_.read_value(node, node)) return;
    }
}

// The loop a thread runs and, where the version keeps it per thread, its running task. Up to
// 3.12 the loop is in the thread state's dict (3.8 to 3.11 inside a holder object); 3.13 keeps
// it in the thread state, 3.14+ with the running task.
AsyncioReader::RunningLoop AsyncioReader::running_loop(const ThreadStateRef& thread, std::uint64_t current_tasks) {
    RunningLoop out;
    if (debug_) {
        objects_.memory().read_value(thread.address + static_cast<std::uint64_t>(debug_->thread_running_loop),
                                     out.loop);
        if (debug_->thread_running_task >= 0) {
            objects_.memory().read_value(thread.address + static_cast<std::uint64_t>(debug_->thread_running_task),
                                         out.task);
        }
        return out;
    }
    if (layout_.tstate_asyncio_running_loop >= 0) {
        out.loop = objects_.pointer_field(thread.address, layout_.tstate_asyncio_running_loop).value_or(0);
    } else if (auto dict = objects_.pointer_field(thread.address, layout_.tstate_dict); dict && !is_none(*dict)) {
        auto held = objects_.dict_get(*dict, "__asyncio_running_event_loop__").value_or(0);
        out.loop = layout_.running_loop_holder_loop >= 0 && !is_none(held)
                       ? objects_.pointer_field(held, layout_.running_loop_holder_loop).value_or(0)
                       : held;
    }
    if (!is_none(out.loop) && !is_none(current_tasks) && objects_.dict_items(current_tasks, dict_scratch_)) {
        for (const auto& item : dict_scratch_) {
            if (item.key == out.loop) out.task = item.value;
        }
    }
    return out;
}

std::optional<AsyncTask> AsyncioReader::read_task(std::uint64_t address, const AsyncioContext& types) {
    if (!objects_.is_instance(address, types.task)) return std::nullopt;
    std::vector<std::uint8_t> raw(static_cast<std::size_t>(layout_.task_size));
    if (!source_.read(address, raw.data(), raw.size())) return std::nullopt;
    auto field = [&](std::int64_t offset) { return attach::field_at<std::uint64_t>(raw, offset); };
    std::int64_t coro_offset = debug_ ? debug_->task_coro : layout_.task_coro;
    std::int64_t name_offset = debug_ && debug_->task_name >= 0 ? debug_->task_name : layout_.task_name;
    AsyncTask task;
    task.address = address;
    task.loop = field(layout_.task_loop);
    task.name = task_name(field(name_offset));
    std::uint64_t coroutine = field(coro_offset);
    if (attach::field_at<std::int32_t>(raw, layout_.task_state) != kStatePending) {
        task.state = TaskState::Done;
        return task;
    }
    if (!is_none(coroutine)) {
        auto chain = coroutines_.chain(coroutine);
        task.frames = std::move(chain.frames);
        task.chain_unreadable = chain.unreadable;
        task.coroutine_frame = coroutines_.frame_of(coroutine);
        PyFrame own;
        if (task.coroutine_frame != 0 && walker_.frame_at(task.coroutine_frame, own, false) == WalkResult::Ok) {
            task.function = own.code->function;
            task.code = own.code;
        }
        if (chain.running) task.state = TaskState::Running;
        std::uint64_t awaited = chain.awaited;
        if (awaited == 0 && !chain.running) awaited = field(layout_.task_fut_waiter);
        classify_awaited(is_none(awaited) ? 0 : awaited, types, task);
    }
    if (task.state != TaskState::Running) {
        task.state = task.awaits != AwaitKind::None ? TaskState::Waiting : TaskState::Scheduled;
    }
    return task;
}

// A name is a str, or from 3.12 the number of an unnamed task, whose name is made on demand.
std::string AsyncioReader::task_name(std::uint64_t name_object) {
    if (auto text = objects_.str_value(name_object, kMaxNameChars)) return *text;
    if (auto number = objects_.int_value(name_object)) return "Task-" + std::to_string(*number);
    return "<unreadable name>";
}

// `await future` leaves the future's iterator on the awaiting frame; `await task` the task's.
void AsyncioReader::classify_awaited(std::uint64_t awaited, const AsyncioContext& types, AsyncTask& task) {
    if (awaited == 0) return;
    auto type = objects_.type_name(awaited).value_or("?");
    if (type == "_asyncio.FutureIter" || type == "FutureIter") {
        awaited = objects_.pointer_field(awaited, layout_.future_iter_future).value_or(0);
        if (awaited == 0) return;
        type = objects_.type_name(awaited).value_or("?");
    }
    task.awaits_type = printable_name(type);
    task.awaited_object = awaited;
    if (objects_.is_instance(awaited, types.task)) {
        task.awaits = AwaitKind::Task;
        task.awaits_tasks.push_back(awaited);
        awaits_pairs_.emplace(task.address, awaited);
        awaited_futures_[awaited] = task.address;
        return;
    }
    awaited_futures_[awaited] = task.address;
    if (types.gathering != 0 && objects_.is_instance(awaited, types.gathering)) {
        task.awaits = AwaitKind::Gather;
        auto children = objects_.attribute(awaited, "_children");
        if (children && objects_.sequence_items(*children, scratch_, kMaxChildren)) {
            for (auto child : scratch_) {
                if (objects_.is_instance(child, types.task) && awaits_pairs_.emplace(task.address, child).second) {
                    task.awaits_tasks.push_back(child);
                }
            }
        }
        return;
    }
    task.awaits = type.find("Future") != std::string::npos ? AwaitKind::Future : AwaitKind::Other;
}

std::vector<std::uint64_t> AsyncioReader::callbacks(std::uint64_t future) {
    std::vector<std::uint64_t> out;
    if (auto first = objects_.pointer_field(future, layout_.task_callback0); first && !is_none(*first)) {
        out.push_back(*first);
    }
    auto list = objects_.pointer_field(future, layout_.task_callbacks);
    std::vector<std::uint64_t> entries;
    if (!list || is_none(*list) || !objects_.sequence_items(*list, entries, kMaxCallbacks)) return out;
    std::vector<std::uint64_t> pair;
    for (auto entry : entries) {
        if (objects_.sequence_items(entry, pair, 2) && !pair.empty()) out.push_back(pair[0]);
    }
    return out;
}

// Who awaits a task is not kept before 3.14: it is told by the callbacks the task will call when
// done. A TaskGroup's task calls the group's _on_task_done, and the group knows its parent task;
// a task given to asyncio.wait or gather calls a closure holding the future the parent awaits.
void AsyncioReader::link_callbacks(const AsyncioContext& types, std::vector<AsyncTask>& tasks, std::size_t first) {
    std::unordered_map<std::uint64_t, std::size_t> by_address;
    for (std::size_t i = first; i < tasks.size(); ++i) by_address.emplace(tasks[i].address, i);
    // `waited_on` is the future the parent awaits for the child, when the callback tells it.
    auto link = [&](std::size_t child, std::uint64_t parent_address, AwaitKind kind, std::uint64_t waited_on) {
        auto parent = by_address.find(parent_address);
        if (parent == by_address.end() || parent->second == child) return;
        auto& awaiting = tasks[parent->second];
        if (awaiting.awaits == AwaitKind::Future && waited_on != 0 && awaiting.awaited_object == waited_on) {
            awaiting.awaits = kind;
        }
        if (awaits_pairs_.emplace(awaiting.address, tasks[child].address).second) {
            awaiting.awaits_tasks.push_back(tasks[child].address);
        }
    };
    std::vector<std::uint64_t> cells;
    for (std::size_t i = first; i < tasks.size(); ++i) {
        if (tasks[i].state == TaskState::Done) continue;
        for (auto callback : callbacks(tasks[i].address)) {
            auto type = objects_.type_name(callback).value_or("");
            if (type == "method") {
                auto self = objects_.pointer_field(callback, layout_.method_self).value_or(0);
                if (types.task_group != 0 && objects_.is_instance(self, types.task_group)) {
                    link(i, objects_.attribute(self, "_parent_task").value_or(0), AwaitKind::TaskGroup,
                         objects_.attribute(self, "_on_completed_fut").value_or(0));
                }
            } else if (type == "function") {
                auto closure = objects_.pointer_field(callback, layout_.function_closure).value_or(0);
                if (is_none(closure) || !objects_.sequence_items(closure, cells, kMaxCallbacks)) continue;
                for (auto cell : cells) {
                    auto content = objects_.pointer_field(cell, layout_.cell_ref).value_or(0);
                    auto waiting = awaited_futures_.find(content);
                    if (content != 0 && waiting != awaited_futures_.end()) {
                        link(i, waiting->second, AwaitKind::Wait, content);
                    }
                }
            }
        }
    }
    for (std::size_t i = first; i < tasks.size(); ++i) {
        for (auto child : tasks[i].awaits_tasks) {
            auto found = by_address.find(child);
            if (found != by_address.end()) tasks[found->second].awaited_by.push_back(tasks[i].address);
        }
    }
    awaited_futures_.clear();
}

// 3.14+ also record who awaits a task, from gather, TaskGroup and `await task`: one awaiting
// object or a set of them.
void AsyncioReader::link_awaited_by(const AsyncioContext& types, std::vector<AsyncTask>& tasks, std::size_t first) {
    if (!debug_ || debug_->task_awaited_by < 0 || debug_->task_awaited_by_is_set < 0) return;
    std::unordered_map<std::uint64_t, std::size_t> by_address;
    for (std::size_t i = first; i < tasks.size(); ++i) by_address.emplace(tasks[i].address, i);
    std::vector<std::uint64_t> awaiting;
    for (std::size_t i = first; i < tasks.size(); ++i) {
        auto& task = tasks[i];
        auto holder = objects_.pointer_field(task.address, debug_->task_awaited_by).value_or(0);
        if (is_none(holder)) continue;
        std::uint8_t is_set = 0;
        objects_.memory().read_value(task.address + static_cast<std::uint64_t>(debug_->task_awaited_by_is_set), is_set);
        awaiting.clear();
        if (is_set == 0) {
            awaiting.push_back(holder);
        } else if (!objects_.set_items(holder, awaiting, kMaxChildren)) {
            continue;
        }
        for (auto parent_address : awaiting) {
            auto parent = by_address.find(parent_address);
            if (parent == by_address.end() || !objects_.is_instance(parent_address, types.task)) continue;
            auto& awaiting_task = tasks[parent->second];
            if (!awaits_pairs_.emplace(parent_address, task.address).second) continue;
            task.awaited_by.push_back(parent_address);
            awaiting_task.awaits_tasks.push_back(task.address);
        }
    }
}

}  // namespace pysample::sampler
