// `dump --async`: the asyncio tasks of each event loop, as a tree of who awaits whom, in text
// and JSON.
#pragma once

#include <cstdint>
#include <map>
#include <nlohmann/json.hpp>
#include <ostream>
#include <string>
#include <vector>

#include "engine/snapshot.hpp"
#include "model/asyncio_tasks.hpp"

namespace pysample::sampler {

// The thread running a loop, as the dump names it.
struct LoopThread {
    std::uint64_t id = 0;
    std::string name;
};
// Thread state address -> the thread.
using LoopThreads = std::map<std::uint64_t, LoopThread>;

// A running task's frames are on its thread's stack, not in the task: takes them from there, from
// its coroutine's frame up, when the stack shows it.
void take_running_frames(AsyncioState& state, const std::vector<ThreadStateRef>& states,
                         const std::vector<ThreadSnapshot>& snapshots);

void print_asyncio_text(const AsyncioState& state, const LoopThreads& threads, std::ostream& out);
nlohmann::ordered_json asyncio_json(const AsyncioState& state, const LoopThreads& threads);

}  // namespace pysample::sampler
