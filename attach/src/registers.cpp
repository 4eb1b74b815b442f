#include "attach/registers.hpp"

#include <sys/ptrace.h>
#include <sys/user.h>

namespace pysample::attach {

#if defined(__x86_64__)
std::optional<Registers> read_registers(pid_t tid) {
    user_regs_struct regs{};
    if (::ptrace(PTRACE_GETREGS, tid, nullptr, &regs) != 0) return std::nullopt;
    Registers out;
    out.values = {regs.rax, regs.rdx, regs.rcx, regs.rbx, regs.rsi, regs.rdi, regs.rbp, regs.rsp, regs.r8,
                  regs.r9,  regs.r10, regs.r11, regs.r12, regs.r13, regs.r14, regs.r15, regs.rip};
    out.syscall = static_cast<std::int64_t>(regs.orig_rax);
    return out;
}
#else
std::optional<Registers> read_registers(pid_t) { return std::nullopt; }
#endif

}  // namespace pysample::attach
