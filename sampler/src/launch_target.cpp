#include "launch_target.hpp"

#include <spdlog/spdlog.h>

#include <chrono>
#include <thread>

#include "attach/error.hpp"
#include "timer.hpp"

namespace pysample::sampler {

std::unique_ptr<PythonProcess> wait_for_python(attach::ChildProcess& child, const CommonOptions& options) {
    auto started = std::chrono::steady_clock::now();
    bool warned = false;
    for (;;) {
        if (child.poll() || stop_requested()) return nullptr;
        try {
            return std::make_unique<PythonProcess>(child.pid(), options.python_version);
        } catch (const attach::Error& e) {
            if (e.kind() != attach::ErrorKind::NotPython && e.kind() != attach::ErrorKind::NoSuchProcess) throw;
            if (!warned && std::chrono::steady_clock::now() - started > std::chrono::seconds(5)) {
                spdlog::warn("still waiting for '{}' to start a Python interpreter: {}", options.command[0], e.what());
                warned = true;
            }
        }
        std::this_thread::sleep_for(std::chrono::microseconds(500));
    }
}

}  // namespace pysample::sampler
