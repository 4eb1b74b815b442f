// A sample's frames as the profile, `top` and `dump` show them.
#pragma once

#include <string>

#include "exporters/profile.hpp"
#include "model/stack_walker.hpp"

namespace pysample::sampler {

// "[18000 frames omitted]": the marker for the middle of a stack too deep to keep whole.
std::string omitted_frames_label(std::uint64_t omitted);

// "[interpreter 2]": where the frames of a sub-interpreter begin.
std::string interpreter_label(std::int64_t id);

// A Python frame as `function (file:line)`, a native one as profile_frame() of native_stack.hpp
// names it, the marker by omitted_frames_label(); without line numbers, lines are 0.
exporters::Frame profile_frame(const PyFrame& frame, bool line_numbers);

}  // namespace pysample::sampler
