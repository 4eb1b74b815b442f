#include "attach/live_process.hpp"

#include <algorithm>

namespace pysample::attach {

namespace {
pid_t checked(pid_t pid) {
    check_process(pid);
    return pid;
}
}  // namespace

LiveProcess::LiveProcess(pid_t pid) : pid_(checked(pid)), memory_(pid), states_(pid), tids_(pid) {}

std::vector<MapEntry> LiveProcess::maps() {
    auto entries = read_maps(pid_);
    std::sort(entries.begin(), entries.end(), [](const auto& a, const auto& b) { return a.start < b.start; });
    return entries;
}

std::string LiveProcess::mapped_file(const MapEntry& mapping, bool* replaced) {
    return openable_mapped_file(pid_, mapping, replaced);
}

std::string LiveProcess::file_in_root(const std::string& path) { return path_in_root(pid_, path); }

std::string LiveProcess::command_line() { return read_cmdline(pid_); }

std::string LiveProcess::executable() { return read_exe_path(pid_); }

std::string LiveProcess::thread_name(pid_t tid) {
    auto status = read_thread_status(pid_, tid);
    return status ? status->name : std::string();
}

std::optional<Target::CpuTimes> LiveProcess::cpu_times(pid_t tid) {
    auto times = states_.read_cpu_times(tid);
    if (!times) return std::nullopt;
    return CpuTimes{times->running, times->waiting, times->runs};
}

}  // namespace pysample::attach
