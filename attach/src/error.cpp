#include "attach/error.hpp"

#include <fstream>

namespace pysample::attach {

std::string permission_hint(int pid) {
    std::string hint = "permission denied reading process " + std::to_string(pid) +
                       ": run pysample as root (sudo), or give it CAP_SYS_PTRACE "
                       "(setcap cap_sys_ptrace+ep $(which pysample))";
    std::ifstream scope("/proc/sys/kernel/yama/ptrace_scope");
    int level = 0;
    if (scope >> level && level > 0) {
        hint +=
            ", or allow tracing non-children with "
            "'echo 0 | sudo tee /proc/sys/kernel/yama/ptrace_scope' (it is " +
            std::to_string(level) + ")";
    }
    return hint;
}

}  // namespace pysample::attach
