#include <spdlog/spdlog.h>

#include <fstream>
#include <string>

#include "sampler/cli.hpp"

namespace {

// The process's own peak resident memory, as /proc reports it (VmHWM); getrusage's would also
// count the process this one was started from.
long peak_resident_kb() {
    std::ifstream status("/proc/self/status");
    std::string line;
    while (std::getline(status, line)) {
        if (line.rfind("VmHWM:", 0) == 0) return std::stol(line.substr(6));
    }
    return -1;
}

}  // namespace

int main(int argc, char** argv) {
    int code = pysample::sampler::run_cli(argc, argv);
    if (spdlog::should_log(spdlog::level::debug)) spdlog::debug("peak resident memory {} kB", peak_resident_kb());
    return code;
}
