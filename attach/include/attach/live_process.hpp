// A running process as a Target: /proc, process_vm_readv and ptrace.
#pragma once

#include "attach/memory.hpp"
#include "attach/target.hpp"
#include "attach/threads.hpp"

namespace pysample::attach {

class LiveProcess final : public Target {
public:
    // Throws attach::Error (NoSuchProcess, PermissionDenied) unless the pid can be inspected.
    explicit LiveProcess(pid_t pid);

    pid_t pid() const override { return pid_; }
    std::string label() const override { return "process " + std::to_string(pid_); }
    bool live() const override { return true; }
    Memory& memory() override { return memory_; }
    std::unique_ptr<Memory> open_memory() override { return std::make_unique<ProcessMemory>(pid_); }
    std::vector<MapEntry> maps() override;
    std::string mapped_file(const MapEntry& mapping, bool* replaced = nullptr) override;
    std::string file_in_root(const std::string& path) override;
    std::string command_line() override;
    std::string executable() override;
    std::vector<std::pair<pid_t, char>> threads() override { return states_.read_all(); }
    char thread_state(pid_t tid) override { return states_.read_state(tid); }
    std::string thread_name(pid_t tid) override;
    std::optional<CpuTimes> cpu_times(pid_t tid) override;
    std::optional<Registers> registers(pid_t tid) override { return read_registers(tid); }
    bool separate_pid_namespace() override { return tids_.separate(); }
    pid_t tid_from_program(pid_t inner) override { return tids_.to_host(inner); }
    pid_t tid_in_program(pid_t tid) override { return tids_.to_inner(tid); }

private:
    pid_t pid_;
    ProcessMemory memory_;
    ThreadStateReader states_;
    NamespaceTids tids_;
};

}  // namespace pysample::attach
