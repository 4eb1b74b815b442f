#include "commands/launch_target.hpp"

#include <spdlog/spdlog.h>

#include <chrono>
#include <cstdio>
#include <thread>

#include "attach/error.hpp"
#include "engine/timer.hpp"
#include "exporters/utf8.hpp"
#include "sampler/cli.hpp"

namespace pysample::sampler {

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

}  // namespace pysample::sampler
