#include "attach/access.hpp"

#include <pwd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <climits>
#include <cstdlib>
#include <fstream>

#include "attach/error.hpp"

namespace pysample::attach {
namespace {

constexpr int kCapSysPtrace = 19;

// "root (uid 0)", or just the uid when it has no name.
std::string describe_user(uid_t uid) {
    std::string id = "uid " + std::to_string(uid);
    passwd entry{};
    passwd* found = nullptr;
    char buffer[1024];
    if (::getpwuid_r(uid, &entry, buffer, sizeof buffer, &found) != 0 || found == nullptr) return id;
    return std::string(found->pw_name) + " (" + id + ")";
}

std::string own_path() {
    char path[PATH_MAX];
    ssize_t length = ::readlink("/proc/self/exe", path, sizeof path - 1);
    return length > 0 ? std::string(path, static_cast<std::size_t>(length)) : "pysample";
}

// A line of /proc/PID/status ("TracerPid:\t1234"), its value alone.
std::optional<std::string> status_line(const std::string& process, const std::string& field) {
    std::ifstream status("/proc/" + process + "/status");
    std::string line;
    while (std::getline(status, line)) {
        if (line.rfind(field + ":", 0) == 0) {
            auto value = line.substr(field.size() + 1);
            value.erase(0, value.find_first_not_of(" \t"));
            return value;
        }
    }
    return std::nullopt;
}

std::string command_name(int pid) {
    std::ifstream comm("/proc/" + std::to_string(pid) + "/comm");
    std::string name;
    std::getline(comm, name);
    return name;
}

bool has_capability(int capability) {
    auto effective = status_line("self", "CapEff");
    if (!effective) return false;
    unsigned long long bits = std::strtoull(effective->c_str(), nullptr, 16);
    return (bits >> capability) & 1ULL;
}

int ptrace_scope() {
    std::ifstream scope("/proc/sys/kernel/yama/ptrace_scope");
    int level = -1;
    return scope >> level ? level : -1;
}

std::optional<ino_t> user_namespace(const std::string& process) {
    struct stat st {};
    if (::stat(("/proc/" + process + "/ns/user").c_str(), &st) != 0) return std::nullopt;
    return st.st_ino;
}

// Whether pysample's user namespace is not the initial one, whose uid_map maps every id to itself.
bool in_nested_user_namespace() {
    std::ifstream map("/proc/self/uid_map");
    unsigned long long inside = 0, outside = 0, count = 0;
    if (!(map >> inside >> outside >> count)) return false;
    return !(inside == 0 && outside == 0 && count == 4294967295ULL);
}

std::string setcap_fix(const AccessFacts& facts) {
    return "give pysample CAP_SYS_PTRACE (sudo setcap cap_sys_ptrace+ep " + facts.own_path + ")";
}

// What Yama's setting adds to the ordinary rule (same user, or CAP_SYS_PTRACE).
std::string ptrace_scope_hint(int level) {
    if (level < 0) return "kernel.yama.ptrace_scope does not apply (no Yama in this kernel)";
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

std::string process_name(const AccessFacts& facts) { return "process " + std::to_string(facts.pid); }

// The first cause that explains the refusal, with its fix; empty when none does.
std::string specific_cause(const AccessFacts& facts) {
    if (facts.yama_scope >= 3) {
        return "kernel.yama.ptrace_scope is " + std::to_string(facts.yama_scope) +
               ": the kernel lets no process read or trace another, root included, until the next reboot "
               "(the setting cannot be lowered while the system runs)";
    }
    if (facts.tracer > 0) {
        return process_name(facts) + " is traced by process " + std::to_string(facts.tracer) +
               (facts.tracer_name.empty() ? "" : " (" + facts.tracer_name + ")") +
               ": a debugger, strace or another pysample holds it, and a process can have one tracer only; "
               "stop that one, or read without stopping the threads (record without --blocking and --native, "
               "dump --nonblocking)";
    }
    if (facts.other_user_namespace && facts.has_cap_sys_ptrace) {
        return process_name(facts) +
               " belongs to another user namespace (a container's), where pysample's CAP_SYS_PTRACE does not "
               "reach: run pysample in that container, or from the host with the process's host pid";
    }
    if (facts.outside_nested_namespace && facts.has_cap_sys_ptrace) {
        return "pysample runs in a user namespace of its own (a container's, or unshare's) and " + process_name(facts) +
               " belongs to another user namespace outside it, where pysample's CAP_SYS_PTRACE does not reach: run "
               "pysample in the process's namespace (on the host, with its host pid)";
    }
    if (facts.euid == 0 && !facts.has_cap_sys_ptrace) {
        return "pysample runs as root, but without CAP_SYS_PTRACE (it was dropped: a container started without "
               "--cap-add SYS_PTRACE, capsh, setpriv or a systemd unit's CapabilityBoundingSet), so it may read "
               "only processes of its own user that allow it; give pysample CAP_SYS_PTRACE";
    }
    bool own_user = facts.target_uid && *facts.target_uid == facts.euid;
    if (!facts.has_cap_sys_ptrace && own_user && facts.target_not_dumpable) {
        return process_name(facts) +
               " is not dumpable (it called prctl(PR_SET_DUMPABLE, 0), or changed its user or capabilities as "
               "setuid programs do): only a reader with CAP_SYS_PTRACE may read it, even as its own user; run "
               "pysample as root (sudo), or " +
               setcap_fix(facts);
    }
    if (!facts.has_cap_sys_ptrace && own_user && facts.yama_scope == 2) {
        return ptrace_scope_hint(2) + "; run pysample as root (sudo), or " + setcap_fix(facts);
    }
    if (!facts.has_cap_sys_ptrace && own_user && facts.yama_scope == 1) {
        return process_name(facts) + " is of pysample's own user, but " + ptrace_scope_hint(1);
    }
    return {};
}

}  // namespace

AccessFacts gather_access_facts(int pid) {
    AccessFacts facts;
    std::string process = std::to_string(pid);
    facts.pid = pid;
    facts.yama_scope = ptrace_scope();
    if (auto tracer = status_line(process, "TracerPid")) {
        int tracer_pid = std::atoi(tracer->c_str());
        if (tracer_pid > 0 && tracer_pid != ::getpid()) {
            facts.tracer = tracer_pid;
            facts.tracer_name = command_name(tracer_pid);
        }
    }
    auto ours = user_namespace("self");
    auto theirs = user_namespace(process);
    facts.other_user_namespace = ours && theirs && *ours != *theirs;
    facts.outside_nested_namespace = !theirs && in_nested_user_namespace();
    facts.has_cap_sys_ptrace = has_capability(kCapSysPtrace);
    facts.euid = ::geteuid();
    facts.euid_name = describe_user(facts.euid);
    if (auto uids = status_line(process, "Uid")) {
        facts.target_uid = static_cast<uid_t>(std::strtoul(uids->c_str(), nullptr, 10));
    }
    struct stat directory {};
    if (facts.target_uid) {
        facts.target_owner = describe_user(*facts.target_uid);
    } else if (::stat(("/proc/" + process).c_str(), &directory) == 0) {
        facts.target_owner = describe_user(directory.st_uid);
    }
    // The kernel gives a process's /proc files (not its directory) to root when it is not dumpable.
    struct stat memory {};
    facts.target_not_dumpable = facts.target_uid && *facts.target_uid != 0 &&
                                ::stat(("/proc/" + process + "/mem").c_str(), &memory) == 0 && memory.st_uid == 0;
    facts.own_path = own_path();
    return facts;
}

std::string explain_refusal(const AccessFacts& facts) {
    std::string prefix = "permission denied reading process " + std::to_string(facts.pid) + ": ";
    if (auto cause = specific_cause(facts); !cause.empty()) return prefix + cause;
    return prefix + "pysample runs as " + facts.euid_name +
           (facts.target_owner.empty() ? "" : " and the process belongs to " + facts.target_owner) +
           "; run pysample as root (sudo), or " + setcap_fix(facts) + "; " + ptrace_scope_hint(facts.yama_scope);
}

std::string permission_hint(int pid) { return explain_refusal(gather_access_facts(pid)); }

std::string process_label(int pid) {
    std::string name = command_name(pid);
    return "process " + std::to_string(pid) + (name.empty() ? "" : " (" + name + ")");
}

}  // namespace pysample::attach
