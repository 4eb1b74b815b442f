#include "model/gil.hpp"

#include <algorithm>
#include <vector>

namespace pysample::sampler {
namespace {

std::uint64_t at(std::uint64_t base, std::int64_t offset) { return base + static_cast<std::uint64_t>(offset); }

}  // namespace

GilReader::GilReader(const PythonProcess& process) {
    const PythonLayout& layout = process.layout();
    locked_ = layout.gil_locked;
    last_holder_ = layout.gil_last_holder;
    bool gil_fields = locked_ >= 0 && last_holder_ >= 0;
    if (layout.interp_gil >= 0 && gil_fields) {
        source_ = Source::Interpreter;
        interp_gil_ = layout.interp_gil;
        where_ = "PyInterpreterState.ceval.gil (locked, last_holder)";
    } else if (layout.runtime_tstate_current >= 0 && process.runtime_address() != 0) {
        source_ = Source::Runtime;
        tstate_current_ = at(process.runtime_address(), layout.runtime_tstate_current);
        if (layout.runtime_gil >= 0 && gil_fields) runtime_gil_ = at(process.runtime_address(), layout.runtime_gil);
        where_ = "_PyRuntime.gilstate.tstate_current";
    } else if (process.thread_state_current_address() != 0) {
        source_ = Source::ThreadStateCurrent;
        tstate_current_ = process.thread_state_current_address();
        where_ = "_PyThreadState_Current";
    } else {
        why_ = "process " + std::to_string(process.pid()) + " runs Python " + process.version().to_string() + " from " +
               process.binary_path() +
               ", which has no symbol _PyThreadState_Current: pysample cannot tell which thread holds the GIL";
    }
}

std::uint64_t GilReader::holder(attach::Memory& memory, std::uint64_t interp) const {
    std::uint64_t tstate = 0;
    switch (source_) {
        case Source::Unknown: return 0;
        case Source::ThreadStateCurrent: memory.read_value(tstate_current_, tstate); return tstate;
        case Source::Runtime:
            // NULL also in the moment between taking the GIL and recording the new holder: the lock
            // itself then tells.
            if (memory.read_value(tstate_current_, tstate) && tstate != 0) return tstate;
            return runtime_gil_ != 0 ? holder_of_gil(memory, runtime_gil_) : 0;
        case Source::Interpreter: {
            std::uint64_t gil = 0;
            if (interp == 0 || !memory.read_value(at(interp, interp_gil_), gil) || gil == 0) return 0;
            return holder_of_gil(memory, gil);
        }
    }
    return 0;
}

// `locked` is -1 before the GIL is created and 0 while it is free; `last_holder` keeps the last
// holder after it is released.
std::uint64_t GilReader::holder_of_gil(attach::Memory& memory, std::uint64_t gil) const {
    std::vector<std::uint8_t> state(static_cast<std::size_t>(std::max(locked_ + 4, last_holder_ + 8)));
    if (!memory.read(gil, state.data(), state.size())) return 0;
    if (attach::field_at<std::int32_t>(state, locked_) != 1) return 0;
    return attach::field_at<std::uint64_t>(state, last_holder_);
}

}  // namespace pysample::sampler
