// Which thread holds the GIL, read from where each version records it.
#pragma once

#include <cstdint>
#include <string>

#include "attach/memory.hpp"
#include "model/python_process.hpp"

namespace pysample::sampler {

class GilReader {
public:
    // 2.7 and 3.6: the global _PyThreadState_Current, the running thread's state or NULL while
    // the GIL is free. 3.7 to 3.11: the same pointer in _PyRuntime.gilstate.tstate_current, and
    // the GIL itself in _PyRuntime.ceval.gil. 3.12+: each interpreter's ceval.gil points to its
    // GIL, whose `locked` and `last_holder` name the holder.
    explicit GilReader(const PythonProcess& process);

    // False when this version's GIL cannot be located (a symbol is missing); why() says why.
    bool known() const { return source_ != Source::Unknown; }
    const std::string& why() const { return why_; }
    // Where the holder is read from, for messages.
    const std::string& where() const { return where_; }

    // The address of the thread state holding the GIL of the interpreter at `interp`; 0 when no
    // thread holds it or it cannot be read.
    std::uint64_t holder(attach::Memory& memory, std::uint64_t interp) const;

private:
    enum class Source { Unknown, ThreadStateCurrent, Runtime, Interpreter };

    std::uint64_t holder_of_gil(attach::Memory& memory, std::uint64_t gil) const;

    Source source_ = Source::Unknown;
    std::uint64_t tstate_current_ = 0;  // address of the pointer to the holding thread state
    std::uint64_t runtime_gil_ = 0;     // address of the GIL in _PyRuntime (3.7 to 3.11)
    std::int64_t interp_gil_ = -1;
    std::int64_t locked_ = -1;
    std::int64_t last_holder_ = -1;
    std::string where_;
    std::string why_;
};

}  // namespace pysample::sampler
