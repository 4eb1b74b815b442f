// Unwinds a stopped thread's native stack from its registers and a copy of its stack memory,
// with libunwind's remote API reading unwind tables from the mapped files' own images.
#pragma once

#include <cstdint>
#include <memory>
#include <string_view>
#include <vector>

#include "attach/memory.hpp"
#include "attach/registers.hpp"
#include "symbolize/modules.hpp"

namespace pysample::symbolize {

// Bytes of a thread's stack copied while it was stopped: target addresses [start, start + size).
struct StackCopy {
    std::uint64_t start = 0;
    std::vector<std::uint8_t> bytes;

    bool contains(std::uint64_t address, std::size_t len) const {
        return address >= start && address - start <= bytes.size() && len <= bytes.size() - (address - start);
    }
};

enum class UnwindResult {
    Ok,            // reached the outermost frame (thread entry or _start)
    NoRegisters,   // the thread's registers could not be read
    NoUnwindInfo,  // a frame's code has no unwind table (JIT code, stripped tables)
    StackRead,     // memory needed was neither in the copy nor readable
    TooDeep,       // more frames than any real stack has, or a frame that does not move the stack
    Failed,        // libunwind reported an error
};
std::string_view describe(UnwindResult result);

class NativeUnwinder {
public:
    NativeUnwinder(ModuleMap& modules, attach::Memory& memory);
    ~NativeUnwinder();
    NativeUnwinder(const NativeUnwinder&) = delete;
    NativeUnwinder& operator=(const NativeUnwinder&) = delete;

    // Program counters, innermost first: the thread's pc, then each caller's return address. On
    // failure `pcs` holds the frames unwound before the failure.
    UnwindResult unwind(const attach::Registers& registers, const StackCopy& stack, std::vector<std::uint64_t>& pcs);

    // Reads the unwinder needed beyond the stack copy and the files' images (live memory).
    std::uint64_t live_reads() const;

    struct State;

private:
    std::unique_ptr<State> state_;
};

}  // namespace pysample::symbolize
