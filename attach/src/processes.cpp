#include "attach/processes.hpp"

#include <dirent.h>

#include <cstdlib>
#include <fstream>
#include <map>
#include <memory>
#include <string>

namespace pysample::attach {
namespace {

// The parent pid from /proc/PID/stat, whose second field (the command name) may hold spaces and
// parentheses: the fields after it start past the last ')'.
pid_t parent_of(pid_t pid) {
    std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
    std::string text;
    if (!std::getline(stat, text)) return 0;
    auto close = text.rfind(')');
    if (close == std::string::npos || close + 4 >= text.size()) return 0;
    // ") S 1234 ..." : state, then the parent pid.
    return static_cast<pid_t>(std::strtol(text.c_str() + close + 4, nullptr, 10));
}

std::multimap<pid_t, pid_t> children_by_parent() {
    std::multimap<pid_t, pid_t> children;
    std::unique_ptr<DIR, int (*)(DIR*)> proc(::opendir("/proc"), ::closedir);
    if (!proc) return children;
    while (const dirent* entry = ::readdir(proc.get())) {
        char* end = nullptr;
        long pid = std::strtol(entry->d_name, &end, 10);
        if (end == entry->d_name || *end != '\0' || pid <= 0) continue;
        if (pid_t parent = parent_of(static_cast<pid_t>(pid)); parent > 0) {
            children.emplace(parent, static_cast<pid_t>(pid));
        }
    }
    return children;
}

}  // namespace

std::vector<pid_t> descendants(pid_t pid) {
    auto children = children_by_parent();
    std::vector<pid_t> found;
    std::vector<pid_t> pending{pid};
    while (!pending.empty()) {
        pid_t parent = pending.back();
        pending.pop_back();
        auto [first, last] = children.equal_range(parent);
        for (auto it = first; it != last; ++it) {
            found.push_back(it->second);
            pending.push_back(it->second);
        }
    }
    return found;
}

}  // namespace pysample::attach
