#include <iostream>
#include <nlohmann/json.hpp>
#include <thread>
#include <unordered_map>

#include "attach/error.hpp"
#include "attach/threads.hpp"
#include "commands/options.hpp"
#include "engine/frames.hpp"
#include "engine/snapshot.hpp"
#include "exporters/utf8.hpp"
#include "model/locals.hpp"
#include "sampler/cli.hpp"

namespace pysample::sampler {
namespace {

constexpr int kAttempts = 5;

using Json = nlohmann::ordered_json;  // keys in the order written, for people reading the output

using LocalsByFrame = std::unordered_map<std::uint64_t, FrameLocals>;

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

void print_thread(const ThreadSnapshot& thread, const LocalsByFrame& locals, std::ostream& out) {
    out << "Thread " << thread.id;
    if (thread.namespace_id != 0) out << " (" << thread.namespace_id << " in its PID namespace)";
    if (!thread.name.empty()) out << " \"" << exporters::escape_control_characters(thread.name) << "\"";
    out << (thread.idle ? " (idle)" : " (active)") << (thread.holds_gil ? " (holds the GIL)" : "");
    if (thread.interpreter != 0) out << " (interpreter " << thread.interpreter << ")";
    out << ":\n";
    if (thread.result != WalkResult::Ok) {
        out << "  <stack could not be read: " << describe(thread.result) << ">\n";
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
        if (const auto* frame_locals = locals_of(*it, locals)) print_locals(*frame_locals, out);
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

Json frame_json(const PyFrame& frame, const LocalsByFrame& locals, bool with_locals) {
    if (frame.native != nullptr) {
        auto label = profile_frame(*frame.native, true);
        return {{"native", true}, {"function", label.function}, {"filename", label.filename}, {"line", label.line}};
    }
    if (frame.is_interpreter_marker()) return {{"interpreter", frame.interpreter}};
    if (frame.code == nullptr) return {{"omitted", frame.omitted}};
    Json out = {{"function", frame.code->function}, {"filename", frame.code->filename}, {"line", frame.line}};
    if (!with_locals) return out;
    const FrameLocals* frame_locals = locals_of(frame, locals);
    out["locals"] = frame_locals != nullptr ? locals_json(*frame_locals) : Json::array();
    if (frame_locals != nullptr && !frame_locals->error.empty()) out["locals_error"] = frame_locals->error;
    if (frame_locals != nullptr && frame_locals->omitted > 0) out["locals_omitted"] = frame_locals->omitted;
    return out;
}

Json thread_json(const ThreadSnapshot& thread, const LocalsByFrame& locals, bool with_locals) {
    Json out = {{"id", thread.id},
                {"namespace_id", thread.namespace_id != 0 ? Json(thread.namespace_id) : Json(nullptr)},
                {"name", thread.name},
                {"idle", thread.idle},
                {"holds_gil", thread.holds_gil},
                {"interpreter", thread.interpreter},
                {"frames", Json::array()}};
    if (thread.result != WalkResult::Ok) out["error"] = std::string(describe(thread.result));
    if (thread.native != MergeResult::Merged) out["native_error"] = std::string(describe(thread.native));
    // Outermost first, as the traceback prints them.
    for (auto it = thread.frames.rbegin(); it != thread.frames.rend(); ++it) {
        out["frames"].push_back(frame_json(*it, locals, with_locals));
    }
    return out;
}

void print_json(PythonProcess& process, const std::vector<const ThreadSnapshot*>& threads, const LocalsByFrame& locals,
                bool with_locals, std::ostream& out) {
    Json document = {{"process",
                      {{"pid", process.pid()},
                       {"command_line", attach::read_cmdline(process.pid())},
                       {"python_version", process.version().to_string()},
                       {"python_binary", process.binary_path()}}},
                     {"threads", Json::array()}};
    for (const auto* thread : threads) document["threads"].push_back(thread_json(*thread, locals, with_locals));
    out << document.dump(2, ' ', false, Json::error_handler_t::replace) << "\n";
}

void print_text(PythonProcess& process, const std::vector<const ThreadSnapshot*>& threads, const LocalsByFrame& locals,
                bool only_gil, std::ostream& out) {
    out << "Process " << process.pid() << ": "
        << exporters::escape_control_characters(attach::read_cmdline(process.pid())) << "\n"
        << "Python " << process.version().to_string() << " ("
        << exporters::escape_control_characters(process.binary_path()) << ")\n";
    if (only_gil && threads.empty()) out << "\nNo thread holds the GIL.\n";
    for (const auto* thread : threads) {
        out << "\n";
        print_thread(*thread, locals, out);
    }
}

}  // namespace

// Without stopping the threads a stack can be caught mid-update; a few quick retries usually give
// a whole one.
int run_dump(const DumpOptions& options) {
    PythonProcess process(options.pid, options.python_version);
    Snapshotter snapshotter(process, options.blocking, options.native);
    if (options.gil && !snapshotter.gil().known()) {
        throw PythonError(PythonErrorKind::UnsupportedVersion, snapshotter.gil().why());
    }
    attach::PageCache pages(process.memory());
    LocalsByFrame locals;
    if (options.locals) {
        snapshotter.inspect_each_snapshot(
            [&](std::vector<ThreadSnapshot>& snapshots) { read_locals(process, pages, snapshots, locals); });
    }
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
    if (options.json) {
        print_json(process, shown, locals, options.locals, std::cout);
    } else {
        print_text(process, shown, locals, options.gil, std::cout);
    }
    return outcome == Snapshotter::Outcome::Ok ? kExitOk : kExitError;
}

}  // namespace pysample::sampler
