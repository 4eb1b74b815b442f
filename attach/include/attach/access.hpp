// Why the kernel refuses pysample access to a process, told from what /proc says of both.
#pragma once

#include <sys/types.h>

#include <optional>
#include <string>

namespace pysample::attach {

// What decides whether one process may read and trace another (ptrace_may_access and Yama).
struct AccessFacts {
    int pid = 0;
    int yama_scope = -1;  // kernel.yama.ptrace_scope; -1 without Yama
    pid_t tracer = 0;     // TracerPid of the target (another process's, never pysample's)
    std::string tracer_name;
    bool other_user_namespace = false;  // the target's user namespace is not pysample's
    // pysample runs in a user namespace below the initial one (a container's, unshare's), and the
    // target's cannot be read from it: it is outside, out of reach.
    bool outside_nested_namespace = false;
    bool has_cap_sys_ptrace = false;   // in pysample's effective set
    uid_t euid = 0;                    // pysample's
    std::string euid_name;             // "root (uid 0)"
    std::optional<uid_t> target_uid;   // the target's real user
    std::string target_owner;          // "alice (uid 1000)", empty when unknown
    bool target_not_dumpable = false;  // its /proc files are root's though it runs as another user
    std::string own_path;              // pysample's executable, for setcap
};

AccessFacts gather_access_facts(int pid);

// The sentence a user needs: the cause that explains the refusal, and its fix.
std::string explain_refusal(const AccessFacts& facts);

}  // namespace pysample::attach
