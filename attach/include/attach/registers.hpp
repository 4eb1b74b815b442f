// General-purpose registers of a stopped thread (x86-64).
#pragma once

#include <sys/types.h>

#include <array>
#include <cstdint>
#include <optional>

namespace pysample::attach {

// In DWARF register order (rax, rdx, rcx, rbx, rsi, rdi, rbp, rsp, r8-r15, rip), which is the
// order unwinders number them in.
struct Registers {
    static constexpr std::size_t kCount = 17;
    static constexpr std::size_t kSp = 7;
    static constexpr std::size_t kPc = 16;
    std::array<std::uint64_t, kCount> values{};
    // The system call the thread was stopped in, -1 when it was running user code.
    std::int64_t syscall = -1;

    std::uint64_t pc() const { return values[kPc]; }
    std::uint64_t sp() const { return values[kSp]; }
};

// Registers of `tid`, which must be in a ptrace-stop of this process (see ThreadSuspender).
std::optional<Registers> read_registers(pid_t tid);

}  // namespace pysample::attach
