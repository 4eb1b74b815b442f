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
    h = mix(h, std::hash<bool>{}(frame.synthetic));
    return mix(h, std::hash<int>{}(frame.line));
}

std::size_t Profile::hash_stack(std::uint32_t thread, std::span<const FrameId> frames) {
    std::size_t h = thread;
    for (FrameId id : frames) h = mix(h, id);
    return h;
}

void IdIndex::insert(std::size_t hash, std::uint32_t id) {
    if (2 * (used_ + 1) > slots_.size()) {
        std::vector<Slot> old(std::max<std::size_t>(16, 2 * slots_.size()));
        old.swap(slots_);
        for (const Slot& slot : old) {
            if (slot.id != kNone) place(slot);
        }
    }
    place({id, tag_of(hash)});
    ++used_;
}

void IdIndex::place(Slot slot) {
    std::size_t i = slot.tag & mask();
    while (slots_[i].id != kNone) i = (i + 1) & mask();
    slots_[i] = slot;
}

Profile::Profile(std::size_t max_stacks, std::size_t max_timeline, std::size_t max_stack_frames)
    : max_stacks_(max_stacks), max_timeline_(max_timeline), max_stack_frames_(max_stack_frames) {}

FrameId Profile::intern(const Frame& frame) {
    std::size_t hash = FrameHash{}(frame);
    FrameId id = frame_ids_.find(hash, [&](std::uint32_t known) { return frames_[known] == frame; });
    if (id != IdIndex::kNone) return id;
    id = static_cast<FrameId>(frames_.size());
    frames_.push_back(frame);
    frame_ids_.insert(hash, id);
    return id;
}

std::uint32_t Profile::intern_thread(const ThreadInfo& thread) {
    for (std::size_t i = 0; i < threads_.size(); ++i) {
        if (threads_[i] == thread) return static_cast<std::uint32_t>(i);
    }
    threads_.push_back(thread);
    return static_cast<std::uint32_t>(threads_.size() - 1);
}

StackId Profile::find_stack(std::size_t hash, std::uint32_t thread, std::span<const FrameId> frames) const {
    return stack_ids_.find(hash, [&](std::uint32_t id) {
        const StackCount& stack = stacks_[id];
        return stack.thread == thread &&
               std::equal(stack.frames.begin(), stack.frames.end(), frames.begin(), frames.end());
    });
}

std::span<const FrameId> Profile::store(std::span<const FrameId> frames) {
    constexpr std::size_t kBlockFrames = 64 * 1024;
    if (frames.empty()) return {};
    if (block_size_ - block_used_ < frames.size()) {
        block_size_ = std::max(kBlockFrames, frames.size());
        blocks_.push_back(std::make_unique<FrameId[]>(block_size_));
        block_used_ = 0;
    }
    FrameId* start = blocks_.back().get() + block_used_;
    std::copy(frames.begin(), frames.end(), start);
    block_used_ += frames.size();
    stored_frames_ += frames.size();
    return {start, frames.size()};
}

StackId Profile::add(std::uint32_t thread, std::span<const FrameId> root_first, std::uint64_t count) {
    total_ += count;
    std::size_t hash = hash_stack(thread, root_first);
    StackId id = find_stack(hash, thread, root_first);
    FrameId other = 0;
    if (id == IdIndex::kNone && full()) {
        other = intern(Frame::made_by_pysample("[other stacks]"));
        root_first = std::span<const FrameId>(&other, 1);
        hash = hash_stack(thread, root_first);
        id = find_stack(hash, thread, root_first);
    }
    if (id != IdIndex::kNone) {
        stacks_[id].count += count;
        return id;
    }
    id = static_cast<StackId>(stacks_.size());
    stacks_.push_back({thread, store(root_first), count});
    stack_ids_.insert(hash, id);
    return id;
}

std::size_t Profile::memory_bytes() const {
    return frames_.size() * sizeof(Frame) + frame_ids_.bytes() + stacks_.capacity() * sizeof(StackCount) +
           stack_ids_.bytes() + blocks_.size() * block_size_ * sizeof(FrameId) +
           timeline_.capacity() * sizeof(TimedSample);
}

void Profile::record_time(std::uint64_t time_us, StackId stack) {
    if (!keep_timeline_) return;
    if (timeline_.size() < max_timeline_) {
        timeline_.push_back({time_us, stack});
    } else {
        timeline_complete_ = false;
    }
}

StackId Profile::add_at(std::uint64_t time_us, std::uint32_t thread, std::span<const FrameId> root_first,
                        std::uint64_t count) {
    StackId id = add(thread, root_first, count);
    for (std::uint64_t i = 0; i < count; ++i) record_time(time_us, id);
    return id;
}

void Profile::add_again(std::uint64_t time_us, StackId stack, std::uint64_t count) {
    total_ += count;
    stacks_[stack].count += count;
    for (std::uint64_t i = 0; i < count; ++i) record_time(time_us, stack);
}

std::vector<FunctionTime> top_functions(const Profile& profile, std::size_t limit) {
    std::map<std::pair<std::string, std::string>, FunctionTime> by_function;
    for (const auto& stack : profile.stacks()) {
        std::set<std::pair<std::string, std::string>> seen;
        for (std::size_t i = 0; i < stack.frames.size(); ++i) {
            const Frame& frame = profile.frame(stack.frames[i]);
            if (frame.synthetic) continue;  // a root or a marker is no function
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
