// What pysample reads a program through: its memory, mappings and the files behind them, its
// threads and their registers. A live process and a core file are its two kinds.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "attach/maps.hpp"
#include "attach/memory.hpp"
#include "attach/registers.hpp"

namespace pysample::attach {

class Target {
public:
    virtual ~Target() = default;

    // The program's process id (for a core file, the one it had), as pysample numbers it.
    virtual pid_t pid() const = 0;
    // "process 123" or "core file core.123 (process 123)", for messages.
    virtual std::string label() const = 0;
    // Whether it runs: a live process can be stopped, traced and changes under the reader.
    virtual bool live() const = 0;

    virtual Memory& memory() = 0;
    // Another reader of the same memory, for another thread (a Memory is used by one thread at a time).
    virtual std::unique_ptr<Memory> open_memory() = 0;
    // Its mappings now, sorted by address; throws attach::Error when they cannot be read.
    virtual std::vector<MapEntry> maps() = 0;
    // Where pysample can open the file behind a mapping (a container's root, a replaced file, a
    // --root directory). Sets `replaced` when the file at the mapping's path is not the one mapped.
    virtual std::string mapped_file(const MapEntry& mapping, bool* replaced = nullptr) = 0;
    // Where pysample can open a file by the path the program sees (e.g. a debug file).
    virtual std::string file_in_root(const std::string& path) = 0;
    virtual std::string command_line() = 0;
    virtual std::string executable() = 0;

    // Its threads with their scheduler states (R running, S waiting...); empty when it is gone.
    virtual std::vector<std::pair<pid_t, char>> threads() = 0;
    // One thread's state; '?' when it is gone.
    virtual char thread_state(pid_t tid) = 0;
    // The kernel's name of a thread (empty when unknown).
    virtual std::string thread_name(pid_t tid) = 0;
    // CPU time a thread ran and waited for a CPU, in ns; nullopt when not known.
    struct CpuTimes {
        std::uint64_t running = 0;
        std::uint64_t waiting = 0;
        std::uint64_t runs = 0;  // how many times it was given a CPU
    };
    virtual std::optional<CpuTimes> cpu_times(pid_t tid) = 0;
    // A thread's registers: of a live process only while it is in a ptrace-stop of pysample.
    virtual std::optional<Registers> registers(pid_t tid) = 0;

    // Thread ids as the program records them (its PID namespace) and as pysample numbers them.
    virtual bool separate_pid_namespace() = 0;
    // pysample's id of the thread the program calls `inner`; 0 when it has no such thread.
    virtual pid_t tid_from_program(pid_t inner) = 0;
    // The program's own id of thread `tid`; 0 when unknown.
    virtual pid_t tid_in_program(pid_t tid) = 0;
};

}  // namespace pysample::attach
