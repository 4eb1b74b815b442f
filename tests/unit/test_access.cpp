#include <doctest/doctest.h>
#include <unistd.h>

#include <string>

#include "attach/access.hpp"

using pysample::attach::AccessFacts;
using pysample::attach::explain_refusal;

namespace {

AccessFacts root_with_capability() {
    AccessFacts facts;
    facts.pid = 4242;
    facts.yama_scope = 1;
    facts.has_cap_sys_ptrace = true;
    facts.euid = 0;
    facts.euid_name = "root (uid 0)";
    facts.target_uid = 0;
    facts.target_owner = "root (uid 0)";
    facts.own_path = "/usr/local/bin/pysample";
    return facts;
}

AccessFacts user_reading_own_process() {
    AccessFacts facts = root_with_capability();
    facts.has_cap_sys_ptrace = false;
    facts.euid = 1000;
    facts.euid_name = "alice (uid 1000)";
    facts.target_uid = 1000;
    facts.target_owner = "alice (uid 1000)";
    return facts;
}

bool says(const std::string& message, const std::string& part) {
    INFO(message);
    return message.find(part) != std::string::npos;
}

}  // namespace

TEST_CASE("a refusal as root names the tracer that holds the target, not root") {
    AccessFacts facts = root_with_capability();
    facts.tracer = 777;
    facts.tracer_name = "gdb";
    std::string message = explain_refusal(facts);
    CHECK(says(message, "permission denied reading process 4242: process 4242 is traced by process 777 (gdb)"));
    CHECK(says(message, "dump --nonblocking"));
    CHECK_FALSE(says(message, "run pysample as root"));
}

TEST_CASE("a refusal under Yama mode 3 says that nothing lowers it until a reboot") {
    AccessFacts facts = root_with_capability();
    facts.yama_scope = 3;
    facts.tracer = 777;  // the setting explains it whatever else is true
    CHECK(says(explain_refusal(facts),
               "kernel.yama.ptrace_scope is 3: the kernel lets no process read or trace "
               "another, root included, until the next reboot"));
}

TEST_CASE("a refusal across user namespaces names the container, not root") {
    AccessFacts facts = root_with_capability();
    facts.other_user_namespace = true;
    std::string message = explain_refusal(facts);
    CHECK(says(message, "belongs to another user namespace (a container's)"));
    CHECK(says(message, "from the host with the process's host pid"));
}

TEST_CASE("from a user namespace of its own, a target outside it is out of reach") {
    AccessFacts facts = root_with_capability();
    facts.outside_nested_namespace = true;
    CHECK(says(explain_refusal(facts),
               "pysample runs in a user namespace of its own (a container's, or unshare's) "
               "and process 4242 belongs to another user namespace outside it"));
}

TEST_CASE("root without CAP_SYS_PTRACE is told that the capability was dropped") {
    AccessFacts facts = root_with_capability();
    facts.has_cap_sys_ptrace = false;
    facts.target_uid = 1000;
    std::string message = explain_refusal(facts);
    CHECK(says(message, "pysample runs as root, but without CAP_SYS_PTRACE"));
    CHECK(says(message, "--cap-add SYS_PTRACE"));
}

TEST_CASE("a process of one's own user that is not dumpable needs CAP_SYS_PTRACE") {
    AccessFacts facts = user_reading_own_process();
    facts.target_not_dumpable = true;
    std::string message = explain_refusal(facts);
    CHECK(says(message, "process 4242 is not dumpable (it called prctl(PR_SET_DUMPABLE, 0)"));
    CHECK(says(message, "sudo setcap cap_sys_ptrace+ep /usr/local/bin/pysample"));
}

TEST_CASE("Yama modes 1 and 2 for a process of one's own user") {
    AccessFacts facts = user_reading_own_process();
    CHECK(says(explain_refusal(facts), "is of pysample's own user, but kernel.yama.ptrace_scope is 1"));
    CHECK(says(explain_refusal(facts), "'pysample record -- python ...'"));
    facts.yama_scope = 2;
    CHECK(says(explain_refusal(facts), "kernel.yama.ptrace_scope is 2, so only root or CAP_SYS_PTRACE"));
}

TEST_CASE("another user's process: run as root or give the capability") {
    AccessFacts facts = user_reading_own_process();
    facts.target_uid = 0;
    facts.target_owner = "root (uid 0)";
    std::string message = explain_refusal(facts);
    CHECK(says(message,
               "pysample runs as alice (uid 1000) and the process belongs to root (uid 0); run pysample as "
               "root (sudo), or give pysample CAP_SYS_PTRACE"));
}

TEST_CASE("the facts of a process pysample may read are gathered without error") {
    auto facts = pysample::attach::gather_access_facts(::getpid());
    CHECK(facts.pid == ::getpid());
    CHECK(facts.tracer == 0);
    CHECK_FALSE(facts.other_user_namespace);
    CHECK(facts.target_uid == ::getuid());
}
