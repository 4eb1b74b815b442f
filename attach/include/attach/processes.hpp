// Other processes related to a target: its children and their children.
#pragma once

#include <sys/types.h>

#include <vector>

namespace pysample::attach {

// Every live descendant of `pid` (children, grandchildren...), parents before their children.
std::vector<pid_t> descendants(pid_t pid);

}  // namespace pysample::attach
