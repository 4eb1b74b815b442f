#pragma once

#include <stdexcept>
#include <string>

namespace pysample::attach {

// What went wrong, coarse enough that the CLI can map each kind to its own exit code.
enum class ErrorKind {
    Usage,
    NoSuchProcess,
    PermissionDenied,
    TargetExited,
    OutputUnwritable,  // a profile cannot be written where it was asked for
    BadInput,          // an input file (a core file) is missing, unreadable or not what it should be
    Other,
};

class Error : public std::runtime_error {
public:
    Error(ErrorKind kind, const std::string& message) : std::runtime_error(message), kind_(kind) {}
    ErrorKind kind() const { return kind_; }

private:
    ErrorKind kind_;
};

// Builds the sentence a user needs when ptrace or memory access is refused.
std::string permission_hint(int pid);
// "process 123 (gdb)", for messages: the process's command name, as the target set it (unescaped).
std::string process_label(int pid);

}  // namespace pysample::attach
