// Walks an interpreter's thread states and each thread's frame chain.
#pragma once

#include <cstdint>
#include <string_view>
#include <vector>

#include "attach/memory.hpp"
#include "layout.hpp"
#include "symbolize/pycode.hpp"

namespace pysample::symbolize {
struct NativeFrameInfo;
}

namespace pysample::sampler {

struct ThreadStateRef {
    std::uint64_t address = 0;
    std::uint64_t thread_id = 0;        // pthread id
    std::uint64_t native_id = 0;        // kernel tid (3.8+)
    std::uint64_t top_frame = 0;        // innermost frame, 0 when the thread runs no Python code
    std::uint64_t top_frame_field = 0;  // where top_frame was read: in the thread state, or its _PyCFrame (3.11, 3.12)
};

// One frame of a sample: a Python frame (code and line) or, in native mode, a native one.
struct PyFrame {
    const symbolize::CodeInfo* code = nullptr;
    int line = 0;
    const symbolize::NativeFrameInfo* native = nullptr;  // set for native frames, whose code is nullptr
    std::uint64_t address = 0;  // the PyFrameObject (up to 3.10) or _PyInterpreterFrame (3.11+)
};

// Which Python frames each call of the interpreter's evaluation function runs, innermost call
// first: call i runs frames [ends[i-1], ends[i]) of the innermost-first frame list (from 0 for the
// first call). Before 3.11 every frame has its own call; from 3.11 a call runs Python-to-Python
// calls inline, and a call may not have pushed a visible frame yet (an empty range).
struct EvalCalls {
    std::vector<std::uint32_t> ends;
};

enum class WalkResult { Ok, ReadFailed, NotCode, TooDeep, Torn };
std::string_view describe(WalkResult result);

class StackWalker {
public:
    StackWalker(const PythonLayout& layout, int major, int minor, attach::Memory& memory, symbolize::CodeCache& codes);

    // Thread states of the interpreter at `interp`, in the interpreter's own order.
    WalkResult threads(std::uint64_t interp, std::vector<ThreadStateRef>& out);
    // The thread's Python frames, innermost first. Rejects the whole stack rather than returning a
    // part of it when a frame cannot be read or does not hold a code object.
    WalkResult frames(const ThreadStateRef& thread, std::vector<PyFrame>& innermost_first, EvalCalls* calls = nullptr);
    // Reads the thread's innermost frame pointer again.
    WalkResult refresh_top_frame(ThreadStateRef& thread);

private:
    void read_top_frame(ThreadStateRef& thread, std::uint64_t frame_field);
    WalkResult legacy_frames(std::uint64_t frame, std::vector<PyFrame>& out, EvalCalls* calls);
    WalkResult interpreter_frames(std::uint64_t frame, std::vector<PyFrame>& out, EvalCalls* calls);
    bool uses_interpreter_frames() const { return layout_.iframe_size > 0; }
    bool executing(const std::vector<std::uint8_t>& frame) const;
    bool is_interpreter_plumbing(std::int64_t owner) const;
    bool marks_eval_entry(std::int64_t owner, std::uint64_t previous) const;

    static constexpr std::size_t kMaxDepth = 4096;
    static constexpr std::size_t kMaxThreads = 16384;

    const PythonLayout& layout_;
    int major_;
    int minor_;
    std::uint64_t code_pointer_mask_;  // clears _PyStackRef tag bits (3.14+)
    attach::Memory& memory_;
    symbolize::CodeCache& codes_;
    std::vector<std::uint8_t> buffer_;
};

}  // namespace pysample::sampler
