#include <spdlog/fmt/fmt.h>

#include <csignal>
#include <iostream>
#include <limits>
#include <nlohmann/json.hpp>
#include <thread>
#include <unordered_map>

#include "attach/core_file.hpp"
#include "attach/error.hpp"
#include "attach/threads.hpp"
#include "commands/async_tree.hpp"
#include "commands/options.hpp"
#include "engine/frames.hpp"
#include "engine/snapshot.hpp"
#include "exporters/utf8.hpp"
#include "model/instructions.hpp"
#include "model/locals.hpp"
#include "sampler/cli.hpp"

namespace pysample::sampler {
namespace {

constexpr int kAttempts = 5;

using Json = nlohmann::ordered_json;  // keys in the order written, for people reading the output

using LocalsByFrame = std::unordered_map<std::uint64_t, FrameLocals>;
using InstructionsByFrame = std::unordered_map<std::uint64_t, std::optional<ExecutedInstruction>>;

// What was read of each frame beside its code and line, by the frame's address.
struct FrameDetails {
    bool with_locals = false;
    bool with_opcodes = false;
    LocalsByFrame locals;
    InstructionsByFrame instructions;
};

// Reads the variables of every Python frame while the snapshot's threads are still stopped.
void read_locals(const PythonProcess& process, attach::PageCache& pages, const std::vector<ThreadSnapshot>& threads,
                 LocalsByFrame& out) {
    pages.clear();
    out.clear();
    LocalsReader reader(pages, process);
    for (const auto& thread : threads) {
        for (const auto& frame : thread.frames) {
            if (frame.code != nullptr && frame.address != 0) out.emplace(frame.address, reader.read(frame.address));
        }
    }
}

// The instruction each Python frame executes, read while the threads are stopped: 3.11+ rewrites
// its bytecode as it specializes.
void read_instructions(InstructionReader& reader, const std::vector<ThreadSnapshot>& threads,
                       InstructionsByFrame& out) {
    out.clear();
    for (const auto& thread : threads) {
        for (const auto& frame : thread.frames) {
            if (frame.code == nullptr || frame.address == 0 || frame.offset < 0) continue;
            const auto* instruction = reader.at(*frame.code, frame.offset);
            out[frame.address] = instruction != nullptr ? std::optional(*instruction) : std::nullopt;
        }
    }
}

// "24 LOAD_ATTR_INSTANCE_VALUE (LOAD_ATTR) x, columns 12-18"
std::string instruction_text(const ExecutedInstruction& instruction) {
    std::string text = std::to_string(instruction.offset) + " " + instruction.name;
    if (!instruction.argument.empty()) text += " " + exporters::escape_control_characters(instruction.argument);
    const auto& where = instruction.location;
    if (where.column >= 0 && where.end_column >= 0 && where.end_line == where.line) {
        text += ", columns " + std::to_string(where.column) + "-" + std::to_string(where.end_column);
    } else if (where.column >= 0 && where.end_column >= 0) {
        text += ", from line " + std::to_string(where.line) + " column " + std::to_string(where.column) + " to line " +
                std::to_string(where.end_line) + " column " + std::to_string(where.end_column);
    }
    return text;
}

const std::optional<ExecutedInstruction>* instruction_of(const PyFrame& frame,
                                                         const InstructionsByFrame& instructions) {
    auto it = instructions.find(frame.address);
    return frame.code != nullptr && it != instructions.end() ? &it->second : nullptr;
}

const FrameLocals* locals_of(const PyFrame& frame, const LocalsByFrame& locals) {
    auto it = locals.find(frame.address);
    return frame.code != nullptr && it != locals.end() ? &it->second : nullptr;
}

void print_locals(const FrameLocals& locals, std::ostream& out) {
    if (!locals.error.empty()) {
        out << "      <variables not read: " << locals.error << ">\n";
        return;
    }
    for (const auto& variable : locals.variables) {
        out << "      " << exporters::escape_control_characters(variable.name) << " = " << variable.repr << "\n";
    }
    if (locals.omitted > 0) out << "      ... and " << locals.omitted << " more variables\n";
}

// What a core says of how the process ended: the signal and the thread that received it.
struct CoreEnd {
    attach::CoreFile* core = nullptr;
    int signal = 0;
    pid_t thread = 0;

    // A core made of a running process (gcore) records a stop, not a signal that ended it.
    bool fatal() const { return signal != 0 && signal != SIGSTOP && signal != SIGTRAP; }
};

CoreEnd core_end(attach::CoreFile* core) {
    CoreEnd end{core};
    if (core == nullptr) return end;
    const auto& layout = core->layout();
    end.signal = layout.signal.value_or(layout.threads.front().signal);
    end.thread = layout.threads.front().tid;
    return end;
}

std::string failure_text(const ThreadSnapshot& thread, const CoreEnd& end) {
    if (end.core != nullptr && thread.id <= std::numeric_limits<pid_t>::max() &&
        end.core->stack_zeroed(static_cast<pid_t>(thread.id))) {
        return "the core holds only zeros for this thread's stack (gdb's gcore writes stacks with guard pages so); "
               "a core from the kernel has it";
    }
    if (end.core != nullptr && thread.result == WalkResult::Torn) return "its frames in the core do not link up";
    return std::string(describe(thread.result));
}

void print_thread(const ThreadSnapshot& thread, const FrameDetails& details, const CoreEnd& end, std::ostream& out) {
    out << "Thread " << thread.id;
    if (thread.namespace_id != 0) out << " (" << thread.namespace_id << " in its PID namespace)";
    if (!thread.name.empty()) out << " \"" << exporters::escape_control_characters(thread.name) << "\"";
    out << (thread.idle ? " (idle)" : " (active)") << (thread.holds_gil ? " (holds the GIL)" : "");
    if (thread.interpreter != 0) out << " (interpreter " << thread.interpreter << ")";
    if (end.fatal() && thread.id == static_cast<std::uint64_t>(end.thread)) {
        out << " (received " << attach::signal_name(end.signal) << ")";
    }
    out << ":\n";
    if (thread.result != WalkResult::Ok) {
        out << "  <stack could not be read: " << failure_text(thread, end) << ">\n";
        return;
    }
    if (thread.frames.empty()) {
        out << "  <no Python frames>\n";
        return;
    }
    out << "Traceback (most recent call last):\n";
    for (auto it = thread.frames.rbegin(); it != thread.frames.rend(); ++it) {
        if (it->native != nullptr) {
            out << "  [native] " << exporters::frame_label(profile_frame(*it->native, true), true) << "\n";
            continue;
        }
        if (it->is_interpreter_marker()) {
            out << "  " << interpreter_label(it->interpreter) << "\n";
            continue;
        }
        if (it->code == nullptr) {
            out << "  ... " << omitted_frames_label(it->omitted) << " ...\n";
            continue;
        }
        out << "  File \"" << exporters::escape_control_characters(it->code->filename) << "\", line " << it->line
            << ", in " << exporters::escape_control_characters(it->code->function) << "\n";
        if (details.with_opcodes && it->offset < 0) {
            out << "    <not started yet>\n";
        } else if (const auto* instruction = instruction_of(*it, details.instructions)) {
            out << "    " << (*instruction ? instruction_text(**instruction) : "<instruction not known>") << "\n";
        }
        if (const auto* frame_locals = locals_of(*it, details.locals)) print_locals(*frame_locals, out);
    }
    if (thread.native != MergeResult::Merged) {
        out << "  <native frames left out: " << describe(thread.native) << ">\n";
    }
}

Json locals_json(const FrameLocals& locals) {
    auto variables = Json::array();
    for (const auto& variable : locals.variables) {
        variables.push_back({{"name", variable.name},
                             {"repr", variable.repr},
                             {"type", variable.type.empty() ? Json(nullptr) : Json(variable.type)}});
    }
    return variables;
}

Json instruction_json(const std::optional<ExecutedInstruction>& instruction) {
    if (!instruction) return nullptr;
    const auto& where = instruction->location;
    auto or_null = [](int value) { return value >= 0 ? Json(value) : Json(nullptr); };
    return {{"offset", instruction->offset},   {"name", instruction->name},
            {"base", instruction->base},       {"argument", instruction->argument},
            {"line", or_null(where.line)},     {"end_line", or_null(where.end_line)},
            {"column", or_null(where.column)}, {"end_column", or_null(where.end_column)}};
}

Json frame_json(const PyFrame& frame, const FrameDetails& details) {
    if (frame.native != nullptr) {
        auto label = profile_frame(*frame.native, true);
        return {{"native", true}, {"function", label.function}, {"filename", label.filename}, {"line", label.line}};
    }
    if (frame.is_interpreter_marker()) return {{"interpreter", frame.interpreter}};
    if (frame.code == nullptr) return {{"omitted", frame.omitted}};
    Json out = {{"function", frame.code->function}, {"filename", frame.code->filename}, {"line", frame.line}};
    if (details.with_opcodes) {
        const auto* instruction = instruction_of(frame, details.instructions);
        out["instruction"] = instruction != nullptr ? instruction_json(*instruction) : Json(nullptr);
        out["started"] = frame.offset >= 0;
    }
    if (!details.with_locals) return out;
    const FrameLocals* frame_locals = locals_of(frame, details.locals);
    out["locals"] = frame_locals != nullptr ? locals_json(*frame_locals) : Json::array();
    if (frame_locals != nullptr && !frame_locals->error.empty()) out["locals_error"] = frame_locals->error;
    if (frame_locals != nullptr && frame_locals->omitted > 0) out["locals_omitted"] = frame_locals->omitted;
    return out;
}

Json thread_json(const ThreadSnapshot& thread, const FrameDetails& details, const CoreEnd& end) {
    Json out = {{"id", thread.id},
                {"namespace_id", thread.namespace_id != 0 ? Json(thread.namespace_id) : Json(nullptr)},
                {"name", thread.name},
                {"idle", thread.idle},
                {"holds_gil", thread.holds_gil},
                {"interpreter", thread.interpreter},
                {"frames", Json::array()}};
    if (thread.result != WalkResult::Ok) out["error"] = failure_text(thread, end);
    if (thread.native != MergeResult::Merged) out["native_error"] = std::string(describe(thread.native));
    // Outermost first, as the traceback prints them.
    for (auto it = thread.frames.rbegin(); it != thread.frames.rend(); ++it) {
        out["frames"].push_back(frame_json(*it, details));
    }
    return out;
}

Json core_json(const CoreEnd& end) {
    const auto& layout = end.core->layout();
    Json out = {{"path", end.core->path()},
                {"compressed", end.core->compressed()},
                {"program", layout.program_name},
                {"signal", end.fatal() ? Json(attach::signal_name(end.signal)) : Json(nullptr)},
                {"thread", end.fatal() ? Json(end.thread) : Json(nullptr)},
                {"fault_address", layout.fault_address ? Json(*layout.fault_address) : Json(nullptr)},
                {"file_warnings", end.core->file_warnings()}};
    return out;
}

// What `--async` read, with the threads that run the loops.
struct AsyncSection {
    AsyncioState state;
    LoopThreads threads;
};

void print_json(PythonProcess& process, const std::vector<const ThreadSnapshot*>& threads, const FrameDetails& details,
                const CoreEnd& end, const AsyncSection* async, std::ostream& out) {
    Json document = {{"process",
                      {{"pid", process.pid()},
                       {"command_line", process.target().command_line()},
                       {"python_version", process.version().to_string()},
                       {"python_binary", process.binary_path()}}}};
    if (end.core != nullptr) document["core"] = core_json(end);
    document["threads"] = Json::array();
    for (const auto* thread : threads) {
        auto entry = thread_json(*thread, details, end);
        if (end.core != nullptr) {
            entry["received_signal"] = end.fatal() && thread->id == static_cast<std::uint64_t>(end.thread);
        }
        document["threads"].push_back(std::move(entry));
    }
    if (async != nullptr) document["asyncio"] = asyncio_json(async->state, async->threads);
    out << document.dump(2, ' ', false, Json::error_handler_t::replace) << "\n";
}

void print_core_header(const CoreEnd& end, std::ostream& out) {
    const auto& layout = end.core->layout();
    out << "Core file " << exporters::escape_control_characters(end.core->path())
        << (end.core->compressed() ? " (gzip)" : "") << " of process " << layout.pid << " ("
        << exporters::escape_control_characters(layout.program_name) << ")\n";
    if (end.fatal()) {
        out << "Ended by " << attach::signal_name(end.signal) << " in thread " << end.thread;
        if (layout.fault_address) out << fmt::format(" at address {:#x}", *layout.fault_address);
        out << "\n";
    } else {
        out << "Taken from the running process (no fatal signal recorded, as gcore makes it)\n";
    }
}

void print_text(PythonProcess& process, const std::vector<const ThreadSnapshot*>& threads, const FrameDetails& details,
                bool only_gil, const CoreEnd& end, const AsyncSection* async, std::ostream& out) {
    if (end.core != nullptr) print_core_header(end, out);
    out << "Process " << process.pid() << ": " << exporters::escape_control_characters(process.target().command_line())
        << "\n"
        << "Python " << process.version().to_string() << " ("
        << exporters::escape_control_characters(process.binary_path()) << ")\n";
    if (only_gil && threads.empty()) out << "\nNo thread holds the GIL.\n";
    for (const auto* thread : threads) {
        out << "\n";
        print_thread(*thread, details, end, out);
    }
    if (async != nullptr) print_asyncio_text(async->state, async->threads, out);
}

LoopThreads loop_threads(const std::vector<ThreadStateRef>& states, const std::vector<ThreadSnapshot>& snapshots) {
    LoopThreads out;
    for (std::size_t i = 0; i < states.size() && i < snapshots.size(); ++i) {
        out[states[i].address] = {snapshots[i].id, snapshots[i].name};
    }
    return out;
}

std::unique_ptr<PythonProcess> open_target(const DumpOptions& options, attach::CoreFile*& core) {
    if (options.core.empty()) return std::make_unique<PythonProcess>(options.pid, options.python_version);
    auto file = std::make_unique<attach::CoreFile>(options.core, options.root, options.executable);
    core = file.get();
    return std::make_unique<PythonProcess>(std::move(file), options.python_version);
}

}  // namespace

// Without stopping the threads a stack can be caught mid-update; a few quick retries usually give
// a whole one.
int run_dump(const DumpOptions& options) {
    attach::CoreFile* core = nullptr;
    auto opened = open_target(options, core);
    PythonProcess& process = *opened;
    CoreEnd end = core_end(core);
    Snapshotter snapshotter(process, options.blocking, options.native);
    if (options.gil && !snapshotter.gil().known()) {
        throw PythonError(PythonErrorKind::UnsupportedVersion, snapshotter.gil().why());
    }
    attach::PageCache pages(process.memory());
    FrameDetails details{options.locals, options.opcodes, {}, {}};
    std::unique_ptr<InstructionReader> instructions;
    if (options.opcodes) {
        instructions = InstructionReader::create(process.memory(), process);
        if (!instructions) {
            throw PythonError(PythonErrorKind::UnsupportedVersion,
                              "--opcodes does not know the instructions of Python " + process.version().to_string());
        }
    }
    std::optional<AsyncSection> async;
    std::optional<AsyncioReader> tasks;
    if (options.async_tasks) tasks.emplace(process, process.memory(), snapshotter.codes());
    // Read while the threads are still stopped, so that the tasks agree with the stacks.
    snapshotter.inspect_each_snapshot([&](std::vector<ThreadSnapshot>& snapshots) {
        if (options.locals) read_locals(process, pages, snapshots, details.locals);
        if (instructions) read_instructions(*instructions, snapshots, details.instructions);
        if (tasks) async.emplace().state = tasks->read(snapshotter.thread_states());
    });
    std::vector<ThreadSnapshot> threads;
    Snapshotter::Outcome outcome = Snapshotter::Outcome::Failed;
    for (int attempt = 0; attempt < kAttempts && outcome == Snapshotter::Outcome::Failed; ++attempt) {
        outcome = snapshotter.take(threads, true);
        if (outcome == Snapshotter::Outcome::Failed) std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
    if (outcome == Snapshotter::Outcome::ProcessGone) {
        std::cerr << "pysample: process " << options.pid << " exited\n";
        return kExitTargetExited;
    }
    if (const auto* suspender = snapshotter.suspender(); suspender && suspender->stop_failures().traced_elsewhere > 0) {
        const auto& failures = suspender->stop_failures();
        std::cerr << "pysample: " << failures.traced_elsewhere << " thread"
                  << (failures.traced_elsewhere == 1 ? "" : "s") << " could not be stopped because "
                  << exporters::escape_control_characters(attach::process_label(failures.tracer))
                  << " traces them (a thread has one tracer only); read without stopping them, a stack may be "
                     "caught mid-update\n";
    }
    std::vector<const ThreadSnapshot*> shown;
    for (const auto& thread : threads) {
        if (!thread.joined && (!options.gil || thread.holds_gil)) shown.push_back(&thread);
    }
    if (tasks && !async) async.emplace().state = tasks->read(snapshotter.thread_states());
    if (async) {
        async->threads = loop_threads(snapshotter.thread_states(), threads);
        take_running_frames(async->state, snapshotter.thread_states(), threads);
    }
    const AsyncSection* section = async ? &*async : nullptr;
    if (options.json) {
        print_json(process, shown, details, end, section, std::cout);
    } else {
        print_text(process, shown, details, options.gil, end, section, std::cout);
    }
    return outcome == Snapshotter::Outcome::Ok ? kExitOk : kExitError;
}

}  // namespace pysample::sampler
