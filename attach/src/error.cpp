#include "attach/error.hpp"

#include <pwd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <climits>
#include <fstream>

namespace pysample::attach {
namespace {

// "root (uid 0)", or just the uid when it has no name.
std::string describe_user(uid_t uid) {
    std::string id = "uid " + std::to_string(uid);
    passwd entry{};
    passwd* found = nullptr;
    char buffer[1024];
    if (::getpwuid_r(uid, &entry, buffer, sizeof buffer, &found) != 0 || found == nullptr) return id;
    return std::string(found->pw_name) + " (" + id + ")";
}

std::string owner_of(int pid) {
    struct stat st {};
    if (::stat(("/proc/" + std::to_string(pid)).c_str(), &st) != 0) return "";
    return describe_user(st.st_uid);
}

std::string own_path() {
    char path[PATH_MAX];
    ssize_t length = ::readlink("/proc/self/exe", path, sizeof path - 1);
    return length > 0 ? std::string(path, static_cast<std::size_t>(length)) : "pysample";
}

// What Yama's setting adds to the ordinary rule (same user, or CAP_SYS_PTRACE).
std::string ptrace_scope_hint() {
    std::ifstream scope("/proc/sys/kernel/yama/ptrace_scope");
    int level = -1;
    if (!(scope >> level)) return "kernel.yama.ptrace_scope does not apply (no Yama in this kernel)";
    std::string setting = "kernel.yama.ptrace_scope is " + std::to_string(level);
    switch (level) {
        case 0: return setting + ", so a process of your own user needs nothing more";
        case 1:
            return setting +
                   ", so even a process of your own user needs this unless pysample starts it "
                   "('pysample record -- python ...') or the setting is 0 "
                   "('sudo sysctl kernel.yama.ptrace_scope=0')";
        case 2: return setting + ", so only root or CAP_SYS_PTRACE may read another process";
        default: return setting + ", so no process may read another one until the next reboot";
    }
}

}  // namespace

std::string permission_hint(int pid) {
    std::string owner = owner_of(pid);
    return "permission denied reading process " + std::to_string(pid) + ": pysample runs as " +
           describe_user(::geteuid()) + (owner.empty() ? "" : " and the process belongs to " + owner) +
           "; run pysample as root (sudo), or give it CAP_SYS_PTRACE (sudo setcap cap_sys_ptrace+ep " + own_path() +
           "); " + ptrace_scope_hint();
}

}  // namespace pysample::attach
