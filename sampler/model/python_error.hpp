// What is wrong with the Python in a target, as opposed to the process itself (attach::Error):
// the command line maps each kind to its own exit status.
#pragma once

#include <stdexcept>
#include <string>

namespace pysample::sampler {

enum class PythonErrorKind {
    NotPython,           // no CPython interpreter in the process (yet)
    UnsupportedVersion,  // an interpreter pysample cannot read: its version, build or state
};

class PythonError : public std::runtime_error {
public:
    PythonError(PythonErrorKind kind, const std::string& message) : std::runtime_error(message), kind_(kind) {}
    PythonErrorKind kind() const { return kind_; }

private:
    PythonErrorKind kind_;
};

}  // namespace pysample::sampler
