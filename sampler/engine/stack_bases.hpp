// The outermost frames each thread's stacks were seen to end at.
#pragma once

#include <algorithm>
#include <cstdint>
#include <unordered_map>
#include <vector>

namespace pysample::sampler {

// A thread's stack ends at its module or thread bootstrap frame, which stays put while the thread
// runs, so a stack read while it changed is told by ending elsewhere. A thread that switches
// between stacks of its own (greenlets, gevent) ends at the base of whichever runs: each thread
// keeps the last kPerThread bases it was confirmed at, most recent first.
class StackBases {
public:
    static constexpr std::size_t kPerThread = 32;
    static constexpr std::size_t kMaxThreads = 4096;

    // Whether a stack of the thread state at `thread` may end at `base`: one the thread ended at
    // before, or any for a thread not seen yet.
    bool plausible(std::uint64_t thread, std::uint64_t base) const {
        auto it = bases_.find(thread);
        return it == bases_.end() || std::find(it->second.begin(), it->second.end(), base) != it->second.end();
    }
    // Whether the thread was seen to end at more than one base: it switches stacks (greenlets).
    bool switches_stacks(std::uint64_t thread) const {
        auto it = bases_.find(thread);
        return it != bases_.end() && it->second.size() > 1;
    }
    void confirm(std::uint64_t thread, std::uint64_t base) {
        if (bases_.size() >= kMaxThreads && bases_.count(thread) == 0) bases_.clear();
        auto& known = bases_[thread];
        auto it = std::find(known.begin(), known.end(), base);
        if (it == known.end()) {
            if (known.size() < kPerThread) known.push_back(base);
            it = known.end() - 1;
            *it = base;
        }
        std::rotate(known.begin(), it, it + 1);
    }

private:
    std::unordered_map<std::uint64_t, std::vector<std::uint64_t>> bases_;
};

}  // namespace pysample::sampler
