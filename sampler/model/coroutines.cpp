#include "model/coroutines.hpp"

#include <algorithm>

namespace pysample::sampler {
namespace {

std::uint64_t at(std::uint64_t base, std::int64_t offset) { return base + static_cast<std::uint64_t>(offset); }

}  // namespace

CoroutineReader::CoroutineReader(ObjectReader& objects, StackWalker& walker)
    : objects_(objects),
      walker_(walker),
      layout_(objects.layout()),
      value_mask_(layout_.stackref_tag_bits > 0 ? ~static_cast<std::uint64_t>(layout_.stackref_tag_bits)
                                                : ~std::uint64_t{0}) {}

bool CoroutineReader::is_coroutine(std::uint64_t object) {
    auto type = objects_.type_name(object);
    return type && (*type == "coroutine" || *type == "generator" || *type == "async_generator");
}

std::uint64_t CoroutineReader::frame_of(std::uint64_t coroutine) {
    if (layout_.gen_iframe >= 0) return at(coroutine, layout_.gen_iframe);
    return objects_.pointer_field(coroutine, layout_.gen_frame).value_or(0);
}

AwaitChain CoroutineReader::chain(std::uint64_t coroutine) {
    AwaitChain out;
    std::uint64_t current = coroutine;
    for (std::size_t depth = 0; depth < kMaxChain; ++depth) {
        if (!is_coroutine(current)) {
            out.awaited = current;
            return out;
        }
        std::uint64_t frame = frame_of(current);
        State state = frame == 0 ? State::Finished : this->state(current, frame);
        if (state == State::Finished) return out;
        if (state == State::Running) {
            out.running = true;
            return out;
        }
        PyFrame read;
        if (state == State::Unreadable || walker_.frame_at(frame, read, state != State::Created) != WalkResult::Ok) {
            out.unreadable = true;
            return out;
        }
        out.frames.push_back(read);
        if (state != State::SuspendedInAwait) return out;
        current = awaited_object(frame);
        if (current == 0) {
            out.unreadable = true;
            return out;
        }
    }
    out.unreadable = true;
    return out;
}

CoroutineReader::State CoroutineReader::state(std::uint64_t coroutine, std::uint64_t frame) {
    return layout_.gen_frame_state >= 0 ? interpreter_frame_state(coroutine, frame) : legacy_state(frame);
}

// Up to 3.10 a coroutine owns a frame object. 3.8 and 3.9 flag it executing and keep f_stacktop
// only while it is suspended; 3.10 has f_state. Suspended in `await` (or `yield from`) when the
// next instruction is YIELD_FROM, which runs again on resumption.
CoroutineReader::State CoroutineReader::legacy_state(std::uint64_t frame) {
    std::int8_t executing = 0;
    std::int32_t lasti = 0;
    if (!objects_.memory().read_value(at(frame, layout_.frame_executing), executing) ||
        !objects_.memory().read_value(at(frame, layout_.frame_lasti), lasti)) {
        return State::Unreadable;
    }
    std::int64_t next = 0;
    if (layout_.frame_stacktop < 0) {  // 3.10: f_state
        std::int64_t relative = executing - layout_.frame_state_created;
        if (relative == 0) return State::Created;
        if (executing == layout_.frame_state_executing || executing == layout_.frame_state_unwinding) {
            return State::Running;
        }
        if (relative != layout_.frame_state_suspended) return State::Finished;
        next = (static_cast<std::int64_t>(lasti) + 1) * layout_.frame_lasti_unit;
    } else {
        if (executing != 0) return State::Running;
        if (lasti < 0) return State::Created;
        auto stacktop = objects_.pointer_field(frame, layout_.frame_stacktop);
        if (!stacktop) return State::Unreadable;
        if (*stacktop == 0) return State::Finished;
        next = lasti + 2;
    }
    auto code = objects_.pointer_field(frame, layout_.frame_code);
    auto bytes = code ? objects_.bytes_value(objects_.pointer_field(*code, layout_.code_code).value_or(0),
                                             static_cast<std::size_t>(next) + 1)
                      : std::nullopt;
    if (!bytes || bytes->data.size() <= static_cast<std::size_t>(next)) return State::Unreadable;
    return bytes->data[static_cast<std::size_t>(next)] == layout_.opcode_yield_from ? State::SuspendedInAwait
                                                                                    : State::Suspended;
}

// From 3.11 the frame lives inside the coroutine, whose gi_frame_state counts from FRAME_CREATED
// through the suspended states to FRAME_EXECUTING, the one after the last of them, and then the
// finished ones. 3.13+ have a state of their own for a suspension in `await`; 3.11 and 3.12 tell
// it from the RESUME after the YIELD_VALUE they stopped at, whose argument is 2 after `yield from`
// and 3 after `await`.
CoroutineReader::State CoroutineReader::interpreter_frame_state(std::uint64_t coroutine, std::uint64_t frame) {
    std::int8_t raw = 0;
    if (!objects_.memory().read_value(at(coroutine, layout_.gen_frame_state), raw)) return State::Unreadable;
    std::int64_t relative = raw - layout_.frame_state_created;
    std::int64_t last_suspended = std::max(
        {layout_.frame_state_suspended, layout_.frame_state_yield_from, layout_.frame_state_yield_from_locked});
    if (relative == 0) return State::Created;
    if (relative == layout_.frame_state_yield_from || relative == layout_.frame_state_yield_from_locked) {
        return State::SuspendedInAwait;
    }
    if (relative == layout_.frame_state_suspended) {
        if (layout_.frame_state_yield_from >= 0) return State::Suspended;
        return resumes_after_await(frame) ? State::SuspendedInAwait : State::Suspended;
    }
    if (relative == last_suspended + 1) return State::Running;
    return relative > last_suspended + 1 ? State::Finished : State::Unreadable;
}

bool CoroutineReader::resumes_after_await(std::uint64_t frame) {
    constexpr std::uint16_t kLocationMask = 3;
    constexpr std::uint16_t kAfterYieldFrom = 2;
    auto instr = objects_.pointer_field(frame, layout_.iframe_instr);
    std::uint16_t next = 0;
    if (!instr || !objects_.memory().read_value(*instr + sizeof(next), next)) return false;
    auto oparg = static_cast<std::uint16_t>(next >> 8);
    return (oparg & kLocationMask) >= kAfterYieldFrom;
}

std::uint64_t CoroutineReader::awaited_object(std::uint64_t frame) {
    auto& memory = objects_.memory();
    std::uint64_t value = 0;
    if (layout_.frame_stacktop >= 0) {
        auto stacktop = objects_.pointer_field(frame, layout_.frame_stacktop);
        if (!stacktop || !memory.read_value(*stacktop - sizeof(value), value)) return 0;
    } else if (layout_.frame_stackdepth >= 0) {
        std::int32_t depth = 0;
        auto stack = objects_.pointer_field(frame, layout_.frame_valuestack);
        if (!stack || !memory.read_value(at(frame, layout_.frame_stackdepth), depth) || depth <= 0 ||
            !memory.read_value(*stack + sizeof(value) * static_cast<std::uint64_t>(depth - 1), value)) {
            return 0;
        }
    } else if (layout_.iframe_stacktop >= 0) {
        std::int32_t stacktop = 0;
        if (!memory.read_value(at(frame, layout_.iframe_stacktop), stacktop) || stacktop <= 0 ||
            !memory.read_value(
                at(frame, layout_.iframe_localsplus) + sizeof(value) * static_cast<std::uint64_t>(stacktop - 1),
                value)) {
            return 0;
        }
    } else {
        auto pointer = objects_.pointer_field(frame, layout_.iframe_stackpointer);
        auto slot = static_cast<std::uint64_t>(objects_.facts().awaited_slot);
        if (!pointer || !memory.read_value(*pointer - sizeof(value) * slot, value)) return 0;
        value &= value_mask_;
    }
    return value;
}

}  // namespace pysample::sampler
