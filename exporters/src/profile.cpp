#include "exporters/profile.hpp"

#include <algorithm>
#include <map>
#include <set>

namespace pysample::exporters {
namespace {

std::size_t mix(std::size_t seed, std::size_t value) {
    return seed ^ (value + 0x9e3779b97f4a7c15ULL + (seed << 6) + (seed >> 2));
}

}  // namespace

std::size_t FrameHash::operator()(const Frame& frame) const {
    std::size_t h = std::hash<std::string>{}(frame.function);
    h = mix(h, std::hash<std::string>{}(frame.filename));
    return mix(h, std::hash<int>{}(frame.line));
}

std::size_t Profile::hash_stack(std::uint32_t thread, std::span<const FrameId> frames) {
    std::size_t h = thread;
    for (FrameId id : frames) h = mix(h, id);
    return h;
}

Profile::Profile(std::size_t max_stacks, std::size_t max_timeline)
    : max_stacks_(max_stacks), max_timeline_(max_timeline) {}

FrameId Profile::intern(const Frame& frame) {
    auto [it, inserted] = frame_ids_.try_emplace(frame, static_cast<FrameId>(frames_.size()));
    if (inserted) frames_.push_back(frame);
    return it->second;
}

std::uint32_t Profile::intern_thread(const ThreadInfo& thread) {
    for (std::size_t i = 0; i < threads_.size(); ++i) {
        if (threads_[i] == thread) return static_cast<std::uint32_t>(i);
    }
    threads_.push_back(thread);
    return static_cast<std::uint32_t>(threads_.size() - 1);
}

StackId Profile::find_stack(std::size_t hash, std::uint32_t thread, std::span<const FrameId> frames) const {
    auto [first, last] = stack_ids_.equal_range(hash);
    for (auto it = first; it != last; ++it) {
        const StackCount& stack = stacks_[it->second];
        if (stack.thread == thread &&
            std::equal(stack.frames.begin(), stack.frames.end(), frames.begin(), frames.end())) {
            return it->second;
        }
    }
    return static_cast<StackId>(-1);
}

StackId Profile::add(std::uint32_t thread, std::span<const FrameId> root_first, std::uint64_t count) {
    total_ += count;
    std::size_t hash = hash_stack(thread, root_first);
    StackId id = find_stack(hash, thread, root_first);
    if (id == static_cast<StackId>(-1) && stacks_.size() >= max_stacks_) {
        FrameId other = intern(Frame{"[other stacks]", "", 0});
        root_first = std::span<const FrameId>(&other, 1);
        hash = hash_stack(thread, root_first);
        id = find_stack(hash, thread, root_first);
    }
    if (id != static_cast<StackId>(-1)) {
        stacks_[id].count += count;
        return id;
    }
    id = static_cast<StackId>(stacks_.size());
    stacks_.push_back({thread, {root_first.begin(), root_first.end()}, count});
    stack_ids_.emplace(hash, id);
    return id;
}

void Profile::record_time(std::uint64_t time_us, StackId stack) {
    if (!keep_timeline_) return;
    if (timeline_.size() < max_timeline_) {
        timeline_.push_back({time_us, stack});
    } else {
        timeline_complete_ = false;
    }
}

StackId Profile::add_at(std::uint64_t time_us, std::uint32_t thread, std::span<const FrameId> root_first) {
    StackId id = add(thread, root_first, 1);
    record_time(time_us, id);
    return id;
}

void Profile::add_again(std::uint64_t time_us, StackId stack) {
    ++total_;
    ++stacks_[stack].count;
    record_time(time_us, stack);
}

std::vector<FunctionTime> top_functions(const Profile& profile, std::size_t limit) {
    std::map<std::pair<std::string, std::string>, FunctionTime> by_function;
    for (const auto& stack : profile.stacks()) {
        std::set<std::pair<std::string, std::string>> seen;
        for (std::size_t i = 0; i < stack.frames.size(); ++i) {
            const Frame& frame = profile.frame(stack.frames[i]);
            auto key = std::make_pair(frame.function, frame.filename);
            auto& entry = by_function[key];
            entry.function = frame.function;
            entry.filename = frame.filename;
            if (seen.insert(key).second) entry.total += stack.count;
            if (i + 1 == stack.frames.size()) entry.own += stack.count;
        }
    }
    std::vector<FunctionTime> ranked;
    for (auto& [key, entry] : by_function) ranked.push_back(std::move(entry));
    std::sort(ranked.begin(), ranked.end(), [](const FunctionTime& a, const FunctionTime& b) {
        return std::tie(b.own, b.total, a.function) < std::tie(a.own, a.total, b.function);
    });
    if (ranked.size() > limit) ranked.resize(limit);
    return ranked;
}

}  // namespace pysample::exporters
