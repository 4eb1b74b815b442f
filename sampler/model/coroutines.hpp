// Reads where a suspended coroutine (or generator) is, and follows what it awaits: a coroutine
// awaiting another is suspended in it, down to the object the innermost one waits for.
#pragma once

#include <cstdint>
#include <vector>

#include "model/pydict.hpp"
#include "model/stack_walker.hpp"

namespace pysample::sampler {

struct AwaitChain {
    // The frames of the coroutines, outermost first: the one asked about, then the one it
    // awaits, and so on.
    std::vector<PyFrame> frames;
    // The innermost coroutine runs now: its frames are on a thread's stack, not here.
    bool running = false;
    // What the innermost suspended coroutine awaits that is not a coroutine (a future, the
    // iterator of a future's __await__...), 0 when it waits on no object (a bare `yield`, or it
    // has not started).
    std::uint64_t awaited = 0;
    // A frame or link could not be read: the chain stops there.
    bool unreadable = false;
};

class CoroutineReader {
public:
    CoroutineReader(ObjectReader& objects, StackWalker& walker);

    // Follows the chain from a coroutine, generator or async generator object.
    AwaitChain chain(std::uint64_t coroutine);
    // The frame inside a coroutine object: where a thread's stack shows it while it runs.
    std::uint64_t frame_of(std::uint64_t coroutine);
    bool is_coroutine(std::uint64_t object);

private:
    enum class State { Created, Suspended, SuspendedInAwait, Running, Finished, Unreadable };
    State state(std::uint64_t coroutine, std::uint64_t frame);
    State legacy_state(std::uint64_t frame);
    State interpreter_frame_state(std::uint64_t coroutine, std::uint64_t frame);
    bool resumes_after_await(std::uint64_t frame);
    std::uint64_t awaited_object(std::uint64_t frame);

    static constexpr std::size_t kMaxChain = 256;

    ObjectReader& objects_;
    StackWalker& walker_;
    const PythonLayout& layout_;
    std::uint64_t value_mask_;
};

}  // namespace pysample::sampler
