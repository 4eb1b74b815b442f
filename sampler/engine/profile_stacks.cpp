#include "engine/profile_stacks.hpp"

#include "engine/frames.hpp"
#include "exporters/exporters.hpp"

namespace pysample::sampler {

ProfileStacks::ProfileStacks(exporters::Profile& profile, bool line_numbers, bool thread_roots)
    : profile_(profile), line_numbers_(line_numbers), thread_roots_(thread_roots) {}

// What identifies a Python frame in the profile: its code object (by the cache's id, which a
// reused address does not share) and the line recorded. Native frames have no such key.
std::uint64_t ProfileStacks::frame_key(const PyFrame& frame) const {
    return (std::uint64_t{frame.code->id} << 32) | static_cast<std::uint32_t>(recorded_line(frame));
}

// The stack key of a thread's frames; false when a frame has no key (a native frame).
bool ProfileStacks::stack_key(const ThreadSnapshot& thread, std::vector<std::uint64_t>& key) const {
    key.clear();
    constexpr std::uint64_t kLabelKey = std::uint64_t{1} << 63;  // above every code id << 32
    for (const auto& frame : thread.frames) {
        if (frame.label != nullptr) {
            key.push_back(kLabelKey | frame.label->id);
            continue;
        }
        if (frame.code == nullptr) return false;
        key.push_back(frame_key(frame));
    }
    return true;
}

exporters::FrameId ProfileStacks::python_frame_id(const PyFrame& frame) {
    auto [it, inserted] = python_frames_.try_emplace(frame_key(frame), 0);
    if (inserted) it->second = profile_.intern(profile_frame(frame, line_numbers_));
    return it->second;
}

exporters::StackId ProfileStacks::add(Process& process, const ThreadSnapshot& thread, std::uint64_t time_us,
                                      std::uint64_t samples) {
    // A waiting asyncio task is counted under its thread, with a stack of its own.
    std::uint64_t last_key = thread.task != 0 ? thread.task : thread.id;
    if (thread.stack_version != 0) {
        auto last = process.last_stacks.find(last_key);
        if (last != process.last_stacks.end() && last->second.version == thread.stack_version &&
            last->second.name == thread.name) {
            profile_.add_again(time_us, last->second.stack, samples);
            return last->second.stack;
        }
    }
    bool keyed = stack_key(thread, key_);
    if (keyed) {
        auto last = process.last_stacks.find(last_key);
        if (last != process.last_stacks.end() && last->second.key == key_ && last->second.name == thread.name) {
            last->second.version = thread.stack_version;
            profile_.add_again(time_us, last->second.stack, samples);
            return last->second.stack;
        }
    }
    stack_.clear();
    if (process.has_root) {
        stack_.push_back(process.root);
        if (thread_roots_) {
            stack_.push_back(
                profile_.intern(exporters::Frame::made_by_pysample(exporters::thread_label({thread.id, thread.name}))));
        }
    }
    for (auto it = thread.frames.rbegin(); it != thread.frames.rend(); ++it) {
        stack_.push_back(it->code != nullptr ? python_frame_id(*it)
                                             : profile_.intern(profile_frame(*it, line_numbers_)));
    }
    auto stack = profile_.add_at(time_us, profile_.intern_thread({thread.id, thread.name}), stack_, samples);
    if (!keyed) return stack;
    if (process.last_stacks.size() > kMaxRememberedThreads) process.last_stacks.clear();
    auto& last = process.last_stacks[last_key];
    last.key.swap(key_);
    last.name = thread.name;
    last.stack = stack;
    last.version = thread.stack_version;
    return stack;
}

}  // namespace pysample::sampler
