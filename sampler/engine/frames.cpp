#include "engine/frames.hpp"

#include "engine/native_stack.hpp"

namespace pysample::sampler {

std::string omitted_frames_label(std::uint64_t omitted) {
    return "[" + std::to_string(omitted) + " frame" + (omitted == 1 ? "" : "s") + " omitted]";
}

std::string interpreter_label(std::int64_t id) { return "[interpreter " + std::to_string(id) + "]"; }

exporters::Frame profile_frame(const PyFrame& frame, bool line_numbers) {
    if (frame.native != nullptr) return profile_frame(*frame.native, line_numbers);
    if (frame.label != nullptr) return exporters::Frame::made_by_pysample(frame.label->text);
    if (frame.is_interpreter_marker()) return exporters::Frame::made_by_pysample(interpreter_label(frame.interpreter));
    if (frame.code == nullptr) return exporters::Frame::made_by_pysample(omitted_frames_label(frame.omitted));
    return {frame.code->function,
            frame.code->filename,
            line_numbers && frame.line > 0 ? frame.line : 0,
            frame.code->firstlineno,
            false,
            frame.code->name};
}

}  // namespace pysample::sampler
