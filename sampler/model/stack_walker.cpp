#include "model/stack_walker.hpp"

#include <algorithm>
#include <cstring>

namespace pysample::sampler {
namespace {

std::uint64_t at(std::uint64_t base, std::int64_t offset) { return base + static_cast<std::uint64_t>(offset); }

// A revisited frame means the chain was read while it changed; treat it like a torn stack. Brent's
// method: compare each frame with one saved at power-of-two steps, which finds a cycle within
// twice its length after entering it, with no memory per frame.
class CycleGuard {
public:
    bool seen_before(std::uint64_t frame) {
        if (frame == saved_) return true;
        if (++steps_ == limit_) {
            saved_ = frame;
            limit_ *= 2;
            steps_ = 0;
        }
        return false;
    }

private:
    std::uint64_t saved_ = 0;
    std::size_t steps_ = 0;
    std::size_t limit_ = 1;
};

// Collects a walk's frames, innermost first. Past kKeepInner + kKeepOuter frames, the outermost
// kKeepOuter are kept in a ring at the end of the list, and the ones pushed out of it counted; at
// the end the ring is put back in order and the marker for the frames left out put before it.
class CutStack {
public:
    explicit CutStack(std::vector<PyFrame>& out) : out_(out) {}
    void push(const PyFrame& frame) {
        ++walked_;
        if (out_.size() < kCapacity) {
            out_.push_back(frame);
            return;
        }
        out_[StackWalker::kKeepInner + ring_] = frame;
        ring_ = (ring_ + 1) % StackWalker::kKeepOuter;
        ++omitted_;
    }
    // Frames walked so far, the ones left out included.
    std::size_t walked() const { return walked_; }
    bool cut() const { return omitted_ > 0; }
    void finish() {
        if (omitted_ == 0) return;
        auto ring = out_.begin() + static_cast<std::ptrdiff_t>(StackWalker::kKeepInner);
        std::rotate(ring, ring + static_cast<std::ptrdiff_t>(ring_), out_.end());
        PyFrame marker;
        marker.omitted = omitted_;
        out_.insert(ring, marker);
    }

private:
    static constexpr std::size_t kCapacity = StackWalker::kKeepInner + StackWalker::kKeepOuter;
    std::vector<PyFrame>& out_;
    std::size_t walked_ = 0;
    std::size_t ring_ = 0;  // the oldest frame of the ring
    std::uint64_t omitted_ = 0;
};

// A stack cut in the middle has no evaluation calls that index its frames.
void finish_walk(CutStack& stack, EvalCalls* calls) {
    if (stack.cut() && calls != nullptr) {
        calls->ends.clear();
        calls->cut = true;
    }
    stack.finish();
}

}  // namespace

std::string_view describe(WalkResult result) {
    switch (result) {
        case WalkResult::Ok: return "ok";
        case WalkResult::ReadFailed: return "memory read failed";
        case WalkResult::NotCode: return "frame without a code object";
        case WalkResult::TooDeep: return "frame chain too deep or cyclic";
        case WalkResult::Torn: return "stack changed while being read";
    }
    return "unknown";
}

StackWalker::StackWalker(const PythonLayout& layout, attach::Memory& memory, symbolize::CodeCache& codes)
    : layout_(layout),
      code_pointer_mask_(layout.stackref_tag_bits >= 0 ? ~static_cast<std::uint64_t>(layout.stackref_tag_bits)
                                                       : ~std::uint64_t{0}),
      memory_(memory),
      codes_(codes) {}

// Interpreters have ids from 3.7; before, the main one is the last of the list and the others are
// numbered from it.
WalkResult StackWalker::threads(std::uint64_t first, std::vector<ThreadStateRef>& out) {
    out.clear();
    interpreters_.clear();
    for (std::uint64_t interp = first; interp != 0;) {
        if (interpreters_.size() >= kMaxInterpreters ||
            std::find(interpreters_.begin(), interpreters_.end(), interp) != interpreters_.end()) {
            return WalkResult::TooDeep;
        }
        interpreters_.push_back(interp);
        std::int64_t id = -1;
        if (layout_.interp_id >= 0 && !memory_.read_value(at(interp, layout_.interp_id), id)) {
            return WalkResult::ReadFailed;
        }
        if (auto result = interpreter_threads(interp, id, out); result != WalkResult::Ok) return result;
        if (!memory_.read_value(at(interp, layout_.interp_next), interp)) return WalkResult::ReadFailed;
    }
    if (layout_.interp_id < 0) {
        for (auto& thread : out) {
            auto position = std::find(interpreters_.begin(), interpreters_.end(), thread.interpreter);
            thread.interpreter_id = static_cast<std::int64_t>(interpreters_.end() - position) - 1;
        }
    }
    return WalkResult::Ok;
}

WalkResult StackWalker::interpreter_threads(std::uint64_t interp, std::int64_t id, std::vector<ThreadStateRef>& out) {
    std::uint64_t tstate = 0;
    if (!memory_.read_value(at(interp, layout_.interp_threads_head), tstate)) return WalkResult::ReadFailed;
    buffer_.resize(static_cast<std::size_t>(layout_.tstate_size));
    std::size_t first = out.size();
    while (tstate != 0) {
        if (out.size() >= kMaxThreads) return WalkResult::TooDeep;
        if (!memory_.read(tstate, buffer_.data(), buffer_.size())) return WalkResult::ReadFailed;
        ThreadStateRef ref;
        ref.address = tstate;
        ref.interpreter = interp;
        ref.interpreter_id = id;
        ref.thread_id = attach::field_at<std::uint64_t>(buffer_, layout_.tstate_thread_id);
        ref.native_id = layout_.tstate_native_thread_id >= 0
                            ? attach::field_at<std::uint64_t>(buffer_, layout_.tstate_native_thread_id)
                            : 0;
        read_top_frame(ref, attach::field_at<std::uint64_t>(buffer_, layout_.tstate_frame));
        if (layout_.tstate_cframe >= 0) ref.cframe = attach::field_at<std::uint64_t>(buffer_, layout_.tstate_cframe);
        std::uint64_t next = attach::field_at<std::uint64_t>(buffer_, layout_.tstate_next);
        out.push_back(ref);
        for (std::size_t i = first; i < out.size(); ++i) {
            if (out[i].address == next) return WalkResult::TooDeep;
        }
        tstate = next;
    }
    return WalkResult::Ok;
}

// 3.11 and 3.12 reach the frame through the thread's _PyCFrame.
void StackWalker::read_top_frame(ThreadStateRef& thread, std::uint64_t frame_field) {
    if (layout_.cframe_current_frame < 0 || frame_field == 0) {
        thread.top_frame = frame_field;
        thread.top_frame_field = at(thread.address, layout_.tstate_frame);
        return;
    }
    thread.top_frame_field = at(frame_field, layout_.cframe_current_frame);
    thread.top_frame = 0;
    memory_.read_value(thread.top_frame_field, thread.top_frame);
}

WalkResult StackWalker::refresh_top_frame(ThreadStateRef& thread) {
    std::uint64_t frame_field = 0;
    if (!memory_.read_value(at(thread.address, layout_.tstate_frame), frame_field)) return WalkResult::ReadFailed;
    read_top_frame(thread, frame_field);
    return WalkResult::Ok;
}

WalkResult StackWalker::frames(const ThreadStateRef& thread, std::vector<PyFrame>& innermost_first, EvalCalls* calls) {
    innermost_first.clear();
    if (calls != nullptr) {
        calls->ends.clear();
        calls->cut = false;
    }
    if (thread.top_frame == 0) return WalkResult::Ok;
    return uses_interpreter_frames() ? interpreter_frames(thread.top_frame, innermost_first, calls)
                                     : legacy_frames(thread.top_frame, innermost_first, calls);
}

// Up to 3.10: heap PyFrameObjects linked by f_back; f_lasti is a byte offset up to 3.9 and a
// code-unit index in 3.10.
WalkResult StackWalker::legacy_frames(std::uint64_t frame, std::vector<PyFrame>& out, EvalCalls* calls) {
    CycleGuard cycles;
    CutStack stack(out);
    std::int64_t refcount_offset = layout_.object_type - 8;  // ob_refcnt comes just before ob_type
    // What tells a generator's frame from a thread's first one, which also has no f_back: 3.6 to
    // 3.10 point f_gen at the generator; 2.7 sets f_stacktop only in a suspended frame.
    std::size_t needed = static_cast<std::size_t>(std::max({layout_.frame_back, layout_.frame_code, layout_.frame_lasti,
                                                            layout_.frame_executing, layout_.frame_suspended}) +
                                                  8);
    buffer_.resize(needed);
    while (frame != 0) {
        if (stack.walked() >= kMaxDepth || cycles.seen_before(frame)) return WalkResult::TooDeep;
        if (!memory_.read(frame, buffer_.data(), buffer_.size())) return WalkResult::ReadFailed;
        std::uint64_t code_address = attach::field_at<std::uint64_t>(buffer_, layout_.frame_code);
        // A frame that has returned (no longer executing, or freed: no reference left) keeps its
        // fields until it is reused. The innermost one may have returned after the thread state
        // was read: it still names the function that ran then, and its caller. Any other, or one
        // without a caller (a finished generator's), means a torn read; a freed frame on the free
        // list links the next one, freed too, by f_back.
        bool returned = (refcount_offset >= 0 && attach::field_at<std::int64_t>(buffer_, refcount_offset) <= 0) ||
                        !executing(buffer_);
        if (returned && (stack.walked() > 0 || attach::field_at<std::uint64_t>(buffer_, layout_.frame_back) == 0)) {
            return WalkResult::Torn;
        }
        const auto* code = codes_.lookup(code_address);
        if (code == nullptr) return WalkResult::NotCode;
        std::int64_t lasti = attach::field_at<std::int32_t>(buffer_, layout_.frame_lasti);
        std::int64_t offset = lasti < 0 ? -1 : lasti * layout_.frame_lasti_unit;
        stack.push({code, code->line_at(offset), nullptr, frame, 0, -1, nullptr, offset});
        if (calls != nullptr) calls->ends.push_back(static_cast<std::uint32_t>(stack.walked()));
        frame = attach::field_at<std::uint64_t>(buffer_, layout_.frame_back);
        // A generator's frame runs under the frame that resumed it and loses that link when it
        // yields: one that ends the chain was read after a yield, and its callees before.
        if (frame == 0 && attach::field_at<std::uint64_t>(buffer_, layout_.frame_suspended) != 0)
            return WalkResult::Torn;
    }
    finish_walk(stack, calls);
    return WalkResult::Ok;
}

WalkResult StackWalker::frame_at(std::uint64_t frame, PyFrame& out, bool started) {
    bool legacy = !uses_interpreter_frames();
    std::int64_t code_offset = legacy ? layout_.frame_code : layout_.iframe_code;
    std::int64_t instr_offset = legacy ? layout_.frame_lasti : layout_.iframe_instr;
    buffer_.resize(static_cast<std::size_t>(std::max(code_offset, instr_offset) + 8));
    if (!memory_.read(frame, buffer_.data(), buffer_.size())) return WalkResult::ReadFailed;
    std::uint64_t code_address = attach::field_at<std::uint64_t>(buffer_, code_offset);
    if (!legacy) code_address &= code_pointer_mask_;
    const auto* code = codes_.lookup(code_address);
    if (code == nullptr) return WalkResult::NotCode;
    std::int64_t offset = -1;
    if (started && legacy) {
        std::int64_t lasti = attach::field_at<std::int32_t>(buffer_, layout_.frame_lasti);
        offset = lasti < 0 ? -1 : lasti * layout_.frame_lasti_unit;
    } else if (started) {
        std::uint64_t instr = attach::field_at<std::uint64_t>(buffer_, layout_.iframe_instr);
        offset = static_cast<std::int64_t>(instr - at(code_address, layout_.code_adaptive));
        if (!code->holds_offset(offset)) {
            code = codes_.lookup(code_address, true);
            if (code == nullptr || !code->holds_offset(offset)) return WalkResult::NotCode;
        }
    }
    out = PyFrame{code, offset < 0 ? code->firstlineno : code->line_at(offset), nullptr, frame, 0, -1, nullptr, offset};
    return WalkResult::Ok;
}

// 3.6 to 3.9 set f_executing while a frame runs; 3.10's f_state is FRAME_EXECUTING (0), or
// FRAME_UNWINDING (2) while an exception leaves it. 2.7 says nothing: every frame passes.
bool StackWalker::executing(const std::vector<std::uint8_t>& frame) const {
    if (layout_.frame_executing < 0) return true;
    auto state = attach::field_at<std::int8_t>(frame, layout_.frame_executing);
    if (layout_.frame_state_executing < 0) return state != 0;
    return state == layout_.frame_state_executing || state == layout_.frame_state_unwinding;
}

bool StackWalker::is_interpreter_plumbing(std::int64_t owner) const {
    return (layout_.owner_cstack >= 0 && owner == layout_.owner_cstack) ||
           (layout_.owner_interpreter >= 0 && owner == layout_.owner_interpreter);
}

// The first frame of an evaluation call: flagged (3.11) or the shim below it (3.12+). Reads the
// frame in buffer_.
bool StackWalker::pushed_by_eval_call(std::int64_t owner) const {
    if (layout_.iframe_is_entry >= 0) return attach::field_at<std::uint8_t>(buffer_, layout_.iframe_is_entry) != 0;
    return is_interpreter_plumbing(owner);
}

// 3.11 flags the first frame of each evaluation call; 3.12+ pushes a shim frame below it, owned
// by the C stack (3.12, 3.13) or the interpreter (3.14+). 3.15's threads also end in a base frame
// owned by the interpreter (previous == 0), which no call pushed.
bool StackWalker::marks_eval_entry(std::int64_t owner, std::uint64_t previous) const {
    if (layout_.owner_interpreter >= 0) {
        bool has_base_frame = layout_.tstate_base_frame >= 0;
        return owner == layout_.owner_interpreter && !(has_base_frame && previous == 0);
    }
    return layout_.owner_cstack >= 0 && owner == layout_.owner_cstack;
}

// 3.11+: _PyInterpreterFrames linked by `previous`. Frames owned by the C stack (3.12-3.14 shims)
// or by the interpreter (3.14+ sentinels) are not user code; frames that have not reached their
// first traceable instruction are not yet visible to the interpreter's own tracebacks either.
// From 3.14 the code pointer is a tagged _PyStackRef whose low bits carry flags.
WalkResult StackWalker::interpreter_frames(std::uint64_t frame, std::vector<PyFrame>& out, EvalCalls* calls) {
    CycleGuard cycles;
    CutStack stack(out);
    buffer_.resize(static_cast<std::size_t>(layout_.iframe_size));
    std::size_t visited = 0;
    while (frame != 0) {
        if (++visited > kMaxDepth || cycles.seen_before(frame)) return WalkResult::TooDeep;
        if (!memory_.read(frame, buffer_.data(), buffer_.size())) return WalkResult::ReadFailed;
        std::uint64_t previous = attach::field_at<std::uint64_t>(buffer_, layout_.iframe_previous);
        auto owner = static_cast<std::int64_t>(attach::field_at<std::uint8_t>(buffer_, layout_.iframe_owner));
        std::uint64_t code_address = attach::field_at<std::uint64_t>(buffer_, layout_.iframe_code) & code_pointer_mask_;
        // Every thread's chain ends in a frame an evaluation call pushed; one ending anywhere else
        // was read while the thread ended or its frame memory was reused.
        if (previous == 0 && !pushed_by_eval_call(owner)) return WalkResult::Torn;
        if (is_interpreter_plumbing(owner)) {
            if (calls != nullptr && marks_eval_entry(owner, previous)) {
                calls->ends.push_back(static_cast<std::uint32_t>(stack.walked()));
            }
            frame = previous;
            continue;
        }
        // A running generator's frame links to the one that resumed it, and loses the link when
        // it yields: a generator frame without one was read after a yield, its callees before.
        if (owner == layout_.owner_generator && previous == 0) return WalkResult::Torn;
        const auto* code = codes_.lookup(code_address);
        if (code == nullptr) return WalkResult::NotCode;
        std::uint64_t instr = attach::field_at<std::uint64_t>(buffer_, layout_.iframe_instr);
        std::uint64_t code_start = at(code_address, layout_.code_adaptive);
        auto byte_offset = static_cast<std::int64_t>(instr - code_start);
        // An instruction outside the cached code means the address now holds another code object.
        if (!code->holds_offset(byte_offset)) {
            code = codes_.lookup(code_address, true);
            if (code == nullptr || !code->holds_offset(byte_offset)) return WalkResult::NotCode;
        }
        bool incomplete = owner != layout_.owner_generator && byte_offset < 2 * std::int64_t{code->firsttraceable};
        if (!incomplete) {
            std::int64_t offset = byte_offset < 0 ? -1 : byte_offset;
            stack.push({code, code->line_at(offset), nullptr, frame, 0, -1, nullptr, offset});
        }
        if (calls != nullptr && layout_.iframe_is_entry >= 0 &&
            attach::field_at<std::uint8_t>(buffer_, layout_.iframe_is_entry) != 0) {
            calls->ends.push_back(static_cast<std::uint32_t>(stack.walked()));
        }
        frame = previous;
    }
    finish_walk(stack, calls);
    return WalkResult::Ok;
}

}  // namespace pysample::sampler
