#include "commands/async_tree.hpp"

#include <algorithm>
#include <set>
#include <vector>

#include "exporters/utf8.hpp"

namespace pysample::sampler {
namespace {

using Json = nlohmann::ordered_json;

std::string escaped(const std::string& text) { return exporters::escape_control_characters(text); }

std::string task_names(const AsyncioState& state, const std::vector<std::uint64_t>& tasks) {
    std::string out;
    for (auto address : tasks) {
        if (!out.empty()) out += ", ";
        const auto* task = state.task(address);
        out += task != nullptr ? escaped(task->name) : "?";
    }
    return out;
}

std::string awaits_text(const AsyncioState& state, const AsyncTask& task) {
    switch (task.awaits) {
        case AwaitKind::None: return {};
        case AwaitKind::Task: return "task " + task_names(state, task.awaits_tasks);
        case AwaitKind::Gather: return "gather(" + task_names(state, task.awaits_tasks) + ")";
        case AwaitKind::TaskGroup: return "TaskGroup(" + task_names(state, task.awaits_tasks) + ")";
        case AwaitKind::Wait: return "wait(" + task_names(state, task.awaits_tasks) + ")";
        case AwaitKind::Future:
        case AwaitKind::Other: return escaped(task.awaits_type);
    }
    return {};
}

class TreePrinter {
public:
    TreePrinter(const AsyncioState& state, std::ostream& out) : state_(state), out_(out) {}

    void print_loop(const EventLoop& loop) {
        std::vector<std::size_t> roots;
        for (auto index : loop.tasks) {
            if (state_.parent_of(state_.tasks[index]) == nullptr) roots.push_back(index);
        }
        std::stable_sort(roots.begin(), roots.end(),
                         [&](std::size_t a, std::size_t b) { return state_.tasks[a].name < state_.tasks[b].name; });
        print_children(roots, "");
        // Tasks awaiting each other in a cycle have no root: show them anyway.
        std::vector<std::size_t> left;
        for (auto index : loop.tasks) {
            if (shown_.count(state_.tasks[index].address) == 0) left.push_back(index);
        }
        print_children(left, "");
    }

private:
    std::vector<std::size_t> children_of(const AsyncTask& task) {
        std::vector<std::size_t> children;
        for (auto address : task.awaits_tasks) {
            auto found = state_.index.find(address);
            if (found == state_.index.end() || shown_.count(address) != 0) continue;
            const auto* parent = state_.parent_of(state_.tasks[found->second]);
            if (parent != nullptr && parent->address == task.address) children.push_back(found->second);
        }
        return children;
    }

    void print_children(const std::vector<std::size_t>& tasks, const std::string& prefix) {
        for (std::size_t i = 0; i < tasks.size(); ++i) {
            const auto& task = state_.tasks[tasks[i]];
            if (!shown_.insert(task.address).second) continue;
            bool last = i + 1 == tasks.size();
            print_task(task, prefix, last);
        }
    }

    void print_task(const AsyncTask& task, const std::string& prefix, bool last) {
        out_ << prefix << (last ? "└── " : "├── ") << "(T) " << escaped(task.name) << " [" << describe(task.state)
             << "]";
        if (auto awaits = awaits_text(state_, task); !awaits.empty()) out_ << " awaits " << awaits;
        if (task.awaited_by.size() > 1) out_ << " (awaited by " << task.awaited_by.size() << " tasks)";
        if (task.chain_unreadable) out_ << " (its coroutines could not all be read)";
        out_ << "\n";
        std::string inner = prefix + (last ? "    " : "│   ");
        auto children = children_of(task);
        for (const auto& frame : task.frames) {
            out_ << inner << (children.empty() ? "  " : "│ ") << escaped(frame.code->function) << " ("
                 << escaped(frame.code->filename) << ":" << frame.line << ")\n";
        }
        print_children(children, inner);
    }

    const AsyncioState& state_;
    std::ostream& out_;
    std::set<std::uint64_t> shown_;
};

Json frames_json(const AsyncTask& task) {
    Json frames = Json::array();
    for (const auto& frame : task.frames) {
        frames.push_back(
            {{"function", frame.code->function}, {"filename", frame.code->filename}, {"line", frame.line}});
    }
    return frames;
}

Json task_json(const AsyncTask& task) {
    Json awaits = nullptr;
    if (task.awaits != AwaitKind::None) {
        awaits = {{"kind", describe(task.awaits)}, {"type", task.awaits_type}, {"tasks", task.awaits_tasks}};
    }
    Json out = {{"address", task.address},     {"name", task.name}, {"state", describe(task.state)},
                {"frames", frames_json(task)}, {"awaits", awaits},  {"awaited_by", task.awaited_by}};
    if (task.chain_unreadable) out["frames_error"] = "a coroutine of its chain could not be read";
    return out;
}

}  // namespace

void take_running_frames(AsyncioState& state, const std::vector<ThreadStateRef>& states,
                         const std::vector<ThreadSnapshot>& snapshots) {
    for (const auto& loop : state.loops) {
        const AsyncTask* known = state.task(loop.running_task);
        if (known == nullptr || known->coroutine_frame == 0) continue;
        auto& task = state.tasks[state.index.at(loop.running_task)];
        for (std::size_t i = 0; i < states.size() && i < snapshots.size(); ++i) {
            if (states[i].address != loop.thread_state) continue;
            const auto& frames = snapshots[i].frames;
            auto begins = std::find_if(frames.begin(), frames.end(), [&](const PyFrame& frame) {
                return frame.code != nullptr && frame.address == task.coroutine_frame;
            });
            if (begins == frames.end()) continue;
            task.frames.clear();
            for (auto it = std::make_reverse_iterator(begins + 1); it != frames.rend(); ++it) {
                if (it->code != nullptr) task.frames.push_back(*it);
            }
        }
    }
}

void print_asyncio_text(const AsyncioState& state, const LoopThreads& threads, std::ostream& out) {
    out << "\n";
    if (!state.available && !state.imported && state.reason == "asyncio is not imported") {
        out << "There is no asyncio event loop in this process: asyncio is not imported.\n";
        return;
    }
    if (!state.available) {
        out << "No asyncio tasks read: " << escaped(state.reason) << ".\n";
        return;
    }
    bool any_running = std::any_of(state.loops.begin(), state.loops.end(),
                                   [](const EventLoop& loop) { return loop.thread_state != 0; });
    if (!any_running) {
        std::size_t tasks = 0;
        for (const auto& loop : state.loops) tasks += loop.tasks.size();
        out << "There is no asyncio event loop running in this process";
        if (tasks > 0) {
            out << " (" << tasks << (tasks == 1 ? " task belongs" : " tasks belong")
                << " to loops that no thread runs: --json lists them)";
        }
        out << ".\n";
        return;
    }
    bool first = true;
    for (const auto& loop : state.loops) {
        if (!first) out << "\n";
        first = false;
        auto thread = threads.find(loop.thread_state);
        if (loop.thread_state != 0 && thread != threads.end()) {
            out << "Event loop in thread " << thread->second.id;
            if (!thread->second.name.empty()) out << " \"" << escaped(thread->second.name) << "\"";
        } else {
            out << "Event loop not running in any thread";
        }
        out << " (" << escaped(loop.type) << "): " << loop.tasks.size() << (loop.tasks.size() == 1 ? " task" : " tasks")
            << "\n";
        TreePrinter(state, out).print_loop(loop);
    }
    if (state.unreadable > 0) out << "\n" << state.unreadable << " tasks could not be read.\n";
}

Json asyncio_json(const AsyncioState& state, const LoopThreads& threads) {
    Json out = {{"available", state.available}};
    if (!state.available) out["reason"] = state.reason;
    out["loops"] = Json::array();
    for (const auto& loop : state.loops) {
        auto thread = threads.find(loop.thread_state);
        bool known = loop.thread_state != 0 && thread != threads.end();
        Json tasks = Json::array();
        for (auto index : loop.tasks) tasks.push_back(task_json(state.tasks[index]));
        out["loops"].push_back({{"thread_id", known ? Json(thread->second.id) : Json(nullptr)},
                                {"thread_name", known ? thread->second.name : std::string()},
                                {"loop_type", loop.type},
                                {"loop_address", loop.address},
                                {"running_task", loop.running_task != 0 ? Json(loop.running_task) : Json(nullptr)},
                                {"tasks", std::move(tasks)}});
    }
    out["tasks_unreadable"] = state.unreadable;
    return out;
}

}  // namespace pysample::sampler
