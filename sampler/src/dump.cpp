#include <iostream>
#include <thread>

#include "attach/threads.hpp"
#include "options.hpp"
#include "sampler/cli.hpp"
#include "snapshot.hpp"

namespace pysample::sampler {
namespace {

constexpr int kAttempts = 5;

void print_thread(const ThreadSnapshot& thread, std::ostream& out) {
    out << "Thread " << thread.id;
    if (!thread.name.empty()) out << " \"" << thread.name << "\"";
    out << (thread.idle ? " (idle)" : " (active)") << ":\n";
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
        out << "  File \"" << it->code->filename << "\", line " << it->line << ", in " << it->code->function << "\n";
    }
    if (thread.native != MergeResult::Merged) {
        out << "  <native frames left out: " << describe(thread.native) << ">\n";
    }
}

}  // namespace

// Without stopping the threads a stack can be caught mid-update; a few quick retries usually give
// a whole one.
int run_dump(const DumpOptions& options) {
    PythonProcess process(options.pid, options.python_version);
    Snapshotter snapshotter(process, options.blocking, options.native);
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
    std::cout << "Process " << process.pid() << ": " << attach::read_cmdline(process.pid()) << "\n"
              << "Python " << process.version().to_string() << " (" << process.binary_path() << ")\n";
    for (const auto& thread : threads) {
        std::cout << "\n";
        print_thread(thread, std::cout);
    }
    return outcome == Snapshotter::Outcome::Ok ? kExitOk : kExitError;
}

}  // namespace pysample::sampler
