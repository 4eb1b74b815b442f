// Walks an interpreter's thread states and each thread's frame chain.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "attach/memory.hpp"
#include "model/layout.hpp"
#include "symbolize/pycode.hpp"

namespace pysample::symbolize {
struct NativeFrameInfo;
}

namespace pysample::sampler {

struct ThreadStateRef {
    std::uint64_t address = 0;
    std::uint64_t interpreter = 0;      // the PyInterpreterState it belongs to
    std::int64_t interpreter_id = 0;    // its id: 0 for the main interpreter
    std::uint64_t thread_id = 0;        // pthread id
    std::uint64_t native_id = 0;        // kernel tid (3.8+)
    std::uint64_t top_frame = 0;        // innermost frame, 0 when the thread runs no Python code
    std::uint64_t top_frame_field = 0;  // where top_frame was read: in the thread state, or its _PyCFrame (3.11, 3.12)
    std::uint64_t cframe = 0;           // 3.10 to 3.12: its _PyCFrame, on the C stack of the thread running it
};

// The text of a frame pysample adds to a stack (an asyncio task's marker), kept by whoever adds it
// for as long as the stacks that show it. `id` tells labels apart without comparing their text.
struct FrameLabel {
    std::string text;
    std::uint32_t id = 0;
};

// One frame of a sample: a Python frame (code and line), in native mode a native one, or the
// marker that stands for the middle of a stack too deep to keep whole.
struct PyFrame {
    const symbolize::CodeInfo* code = nullptr;
    int line = 0;
    const symbolize::NativeFrameInfo* native = nullptr;  // set for native frames, whose code is nullptr
    std::uint64_t address = 0;  // the PyFrameObject (up to 3.10) or _PyInterpreterFrame (3.11+)
    // Markers have neither code nor native: the middle of a stack too deep to keep whole (how many
    // frames it stands for), or where the frames of a sub-interpreter begin (its id).
    std::uint64_t omitted = 0;
    std::int64_t interpreter = -1;
    const FrameLabel* label = nullptr;  // a labelled marker: an asyncio task's
    // Byte offset in the code's bytecode of the instruction the frame executes (up to 3.10 maybe
    // its first EXTENDED_ARG prefix, 3.11 and 3.12 maybe one of its inline caches); -1 before the
    // frame starts or when unknown.
    std::int64_t offset = -1;

    bool is_marker() const { return code == nullptr && native == nullptr; }
    bool is_omitted_marker() const { return is_marker() && interpreter < 0 && label == nullptr; }
    bool is_interpreter_marker() const { return is_marker() && interpreter >= 0; }
};

// Which Python frames each call of the interpreter's evaluation function runs, innermost call
// first: call i runs frames [ends[i-1], ends[i]) of the innermost-first frame list (from 0 for the
// first call). Before 3.11 every frame has its own call; from 3.11 a call runs Python-to-Python
// calls inline, and a call may not have pushed a visible frame yet (an empty range).
struct EvalCalls {
    std::vector<std::uint32_t> ends;
    bool cut = false;  // the stack was cut in the middle: the ends do not index the frames kept
};

enum class WalkResult { Ok, ReadFailed, NotCode, TooDeep, Torn };
std::string_view describe(WalkResult result);

class StackWalker {
public:
    StackWalker(const PythonLayout& layout, attach::Memory& memory, symbolize::CodeCache& codes);

    // Thread states of every interpreter, from the one at `first` (the head of the runtime's list,
    // the newest) to the main one, each interpreter's in its own order.
    WalkResult threads(std::uint64_t first, std::vector<ThreadStateRef>& out);
    // The thread's Python frames, innermost first. Rejects the whole stack rather than returning a
    // part of it when a frame cannot be read or does not hold a code object. A stack deeper than
    // kKeepInner + kKeepOuter frames keeps its innermost and outermost ones, with a marker frame
    // between them that counts the frames left out.
    WalkResult frames(const ThreadStateRef& thread, std::vector<PyFrame>& innermost_first, EvalCalls* calls = nullptr);
    // One frame, read on its own (a suspended coroutine's): its code and line. `started` is false
    // for a frame that has not run yet, whose line is then its code's first.
    WalkResult frame_at(std::uint64_t frame, PyFrame& out, bool started = true);
    // Reads the thread's innermost frame pointer again.
    WalkResult refresh_top_frame(ThreadStateRef& thread);
    // The main interpreter (the last of the list) of the last threads() walk, 0 before one.
    std::uint64_t main_interpreter() const { return interpreters_.empty() ? 0 : interpreters_.back(); }
    // How many interpreters the last threads() walk found.
    std::size_t interpreters() const { return interpreters_.size(); }

private:
    void read_top_frame(ThreadStateRef& thread, std::uint64_t frame_field);
    WalkResult interpreter_threads(std::uint64_t interp, std::int64_t id, std::vector<ThreadStateRef>& out);
    WalkResult legacy_frames(std::uint64_t frame, std::vector<PyFrame>& out, EvalCalls* calls);
    WalkResult interpreter_frames(std::uint64_t frame, std::vector<PyFrame>& out, EvalCalls* calls);
    bool uses_interpreter_frames() const { return layout_.iframe_size > 0; }
    bool executing(const std::vector<std::uint8_t>& frame) const;
    bool is_interpreter_plumbing(std::int64_t owner) const;
    bool pushed_by_eval_call(std::int64_t owner) const;
    bool marks_eval_entry(std::int64_t owner, std::uint64_t previous) const;

public:
    static constexpr std::size_t kKeepInner = 2048;
    static constexpr std::size_t kKeepOuter = 2048;
    // More frames than this is no stack but a chain read while it changed, or a cycle too long for
    // the cycle check to see within the walk.
    static constexpr std::size_t kMaxDepth = 1 << 18;

private:
    static constexpr std::size_t kMaxThreads = 16384;
    static constexpr std::size_t kMaxInterpreters = 1024;

    const PythonLayout& layout_;
    std::uint64_t code_pointer_mask_;  // clears _PyStackRef tag bits (3.14+)
    attach::Memory& memory_;
    symbolize::CodeCache& codes_;
    std::vector<std::uint8_t> buffer_;
    std::vector<std::uint64_t> interpreters_;
};

}  // namespace pysample::sampler
