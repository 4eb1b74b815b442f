#include "commands/launch_target.hpp"

#include <spdlog/spdlog.h>

#include <chrono>
#include <csignal>
#include <cstdio>
#include <thread>

#include "attach/error.hpp"
#include "engine/timer.hpp"
#include "exporters/utf8.hpp"
#include "sampler/cli.hpp"

namespace pysample::sampler {

namespace {

std::unique_ptr<PythonProcess> wait_for_python(attach::ChildProcess& child, const CommonOptions& options) {
    auto started = std::chrono::steady_clock::now();
    bool warned = false;
    for (;;) {
        if (child.poll() || stop_requested()) return nullptr;
        // The child may exit between the check above and the attach: then it is no error of the
        // target's (a zombie, gone), only a command that ended before Python started.
        auto keep_waiting = [&](const std::exception& e) {
            if (!warned && std::chrono::steady_clock::now() - started > std::chrono::seconds(5)) {
                spdlog::warn("still waiting for '{}' to start a Python interpreter: {}", options.command[0], e.what());
                warned = true;
            }
        };
        try {
            return std::make_unique<PythonProcess>(child.pid(), options.python_version);
        } catch (const PythonError& e) {
            if (child.poll()) return nullptr;
            if (e.kind() != PythonErrorKind::NotPython) throw;
            keep_waiting(e);
        } catch (const attach::Error& e) {
            if (child.poll()) return nullptr;
            if (e.kind() != attach::ErrorKind::NoSuchProcess) throw;
            keep_waiting(e);
        }
        std::this_thread::sleep_for(std::chrono::microseconds(500));
    }
}

int no_python_ran(const std::vector<std::string>& command, int status, bool quiet) {
    if (!quiet && !stop_requested()) {
        std::fprintf(stderr, "pysample: '%s' %s without ever running Python; nothing recorded\n",
                     exporters::escape_control_characters(command.at(0)).c_str(),
                     attach::ChildProcess::describe_status(status).c_str());
    }
    return kExitNotPython;
}

bool wait_for_exit(attach::ChildProcess& child, std::chrono::milliseconds limit) {
    constexpr auto kStep = std::chrono::milliseconds(10);
    for (auto waited = std::chrono::milliseconds(0); !child.poll() && waited < limit; waited += kStep) {
        std::this_thread::sleep_for(kStep);
    }
    return child.poll().has_value();
}

}  // namespace

Launched launch_command(const CommonOptions& options, StopSignals& signals, bool wait_for_python_to_run) {
    Launched launched;
    launched.child = std::make_unique<attach::ChildProcess>(options.command);
    signals.forward_to(launched.child->pid());
    if (!wait_for_python_to_run) return launched;
    launched.process = wait_for_python(*launched.child, options);
    if (!launched.process) launched.exit_code = no_python_ran(options.command, launched.child->wait(), options.quiet);
    return launched;
}

int finish_launched(attach::ChildProcess& child, std::optional<int> reaped, WhenDone when_done,
                    const CommonOptions& options, std::string_view done) {
    constexpr auto kGrace = std::chrono::milliseconds(1000);
    if (reaped) child.set_reaped(*reaped);
    if (stop_requested()) wait_for_exit(child, kGrace);
    if (!child.poll() && (stop_requested() || when_done == WhenDone::StopIt)) {
        child.send_signal(stop_requested() ? stop_signal() : SIGTERM);
        wait_for_exit(child, kGrace);
    }
    if (!child.poll() && !options.quiet) {
        std::fprintf(stderr, "pysample: %s%swaiting for '%s' (pid %d) to exit, Ctrl-C to stop it\n",
                     std::string(done).c_str(), done.empty() ? "" : "; ",
                     exporters::escape_control_characters(options.command.at(0)).c_str(), child.pid());
    }
    return attach::ChildProcess::exit_code(child.wait());
}

}  // namespace pysample::sampler
