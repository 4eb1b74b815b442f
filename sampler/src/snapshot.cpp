#include "snapshot.hpp"

#include <spdlog/spdlog.h>

namespace pysample::sampler {

Snapshotter::Snapshotter(PythonProcess& process, bool blocking)
    : process_(process),
      pages_(process.memory()),
      codes_(process.memory(), process.code_layout(), process.code_type_address()),
      walker_(process.layout(), process.version().major, process.version().minor, pages_, codes_),
      states_(process.pid()) {
    if (blocking) suspender_ = std::make_unique<attach::ThreadSuspender>(process.pid());
}

const std::string& Snapshotter::thread_name(pid_t tid) {
    auto it = names_.find(tid);
    if (it == names_.end()) {
        auto status = attach::read_thread_status(process_.pid(), tid);
        it = names_.emplace(tid, status ? status->name : std::string()).first;
    }
    return it->second;
}

// Scheduler states are read before the threads are stopped: a stopped thread always looks idle.
Snapshotter::Outcome Snapshotter::take(std::vector<ThreadSnapshot>& out, bool walk_idle) {
    out.clear();
    auto states = states_.read_all();
    if (states.empty()) return Outcome::ProcessGone;
    std::map<pid_t, char> state_of(states.begin(), states.end());

    attach::ScopedPause pause(suspender_.get());
    if (!pause.ok()) return Outcome::ProcessGone;
    pages_.clear();
    std::uint64_t interp = process_.interpreter_head(pages_);
    if (interp == 0) return Outcome::Ok;  // runtime not initialised yet, or finalised

    if (auto result = walker_.threads(interp, threads_); result != WalkResult::Ok) {
        ++stats_.rejected;
        ++stats_.reasons[result];
        spdlog::debug("pid {}: thread list unreadable: {}", process_.pid(), describe(result));
        return Outcome::Failed;
    }
    bool any_failed = false;
    for (const auto& thread : threads_) {
        ThreadSnapshot snap;
        snap.id = thread.native_id != 0 ? thread.native_id : thread.thread_id;
        auto tid = static_cast<pid_t>(thread.native_id);
        auto state = state_of.find(tid);
        snap.idle = thread.native_id != 0 && (state == state_of.end() || state->second != 'R');
        if (state != state_of.end()) snap.name = thread_name(tid);
        if (!snap.idle || walk_idle) {
            ++stats_.thread_stacks;
            snap.result = walker_.frames(thread, snap.frames);
            if (snap.result != WalkResult::Ok) {
                any_failed = true;
                ++stats_.rejected;
                ++stats_.reasons[snap.result];
                snap.frames.clear();
            }
        }
        out.push_back(std::move(snap));
    }
    return any_failed ? Outcome::Failed : Outcome::Ok;
}

}  // namespace pysample::sampler
