#include <algorithm>
#include <string>
#include <vector>

#include "exporters/exporters.hpp"
#include "exporters/utf8.hpp"

namespace pysample::exporters {
namespace {

// Separators of the folded format must not appear inside a frame: each stack is one line, its
// frames separated by ';'.
std::string sanitize(std::string_view raw) {
    std::string text = escape_control_characters(raw);
    std::replace(text.begin(), text.end(), ';', ':');
    return text;
}

// The position of each text in sorted order, the same for equal texts (frames that differ only in
// what the output leaves out, like their line, print the same and share a line).
std::vector<std::uint32_t> ranks_of(const std::vector<std::string>& texts) {
    std::vector<std::uint32_t> order(texts.size());
    for (std::uint32_t i = 0; i < order.size(); ++i) order[i] = i;
    std::sort(order.begin(), order.end(), [&](std::uint32_t a, std::uint32_t b) { return texts[a] < texts[b]; });
    std::vector<std::uint32_t> rank(texts.size());
    for (std::uint32_t position = 0; position < order.size(); ++position) {
        bool same_as_previous = position > 0 && texts[order[position]] == texts[order[position - 1]];
        rank[order[position]] = same_as_previous ? rank[order[position - 1]] : position;
    }
    return rank;
}

}  // namespace

// Lines are built one at a time as they are written, from the profile's stacks in order of their
// texts (stacks of different threads with the same frames next to each other, merged): a long
// run's many stacks are never all held as strings at once.
void write_collapsed(const Profile& profile, const WriteOptions& options, std::ostream& out) {
    std::vector<std::string> frame_texts;
    frame_texts.reserve(profile.frames().size());
    for (const Frame& frame : profile.frames())
        frame_texts.push_back(sanitize(frame_label(frame, options.line_numbers)));
    std::vector<std::string> thread_texts;
    for (const ThreadInfo& thread : profile.threads()) thread_texts.push_back(sanitize(thread_label(thread)));
    auto frame_rank = ranks_of(frame_texts);
    auto thread_rank = ranks_of(thread_texts);

    const auto& stacks = profile.stacks();
    bool by_thread = options.thread_roots;
    auto same_line = [&](const StackCount& a, const StackCount& b) {
        return (!by_thread || thread_rank[a.thread] == thread_rank[b.thread]) &&
               std::ranges::equal(a.frames, b.frames,
                                  [&](FrameId p, FrameId q) { return frame_rank[p] == frame_rank[q]; });
    };
    std::vector<std::uint32_t> order(stacks.size());
    for (std::uint32_t i = 0; i < order.size(); ++i) order[i] = i;
    std::sort(order.begin(), order.end(), [&](std::uint32_t x, std::uint32_t y) {
        const StackCount& a = stacks[x];
        const StackCount& b = stacks[y];
        if (by_thread && thread_rank[a.thread] != thread_rank[b.thread])
            return thread_rank[a.thread] < thread_rank[b.thread];
        return std::ranges::lexicographical_compare(
            a.frames, b.frames, [&](FrameId p, FrameId q) { return frame_rank[p] < frame_rank[q]; });
    });
    std::string text;
    for (std::size_t i = 0; i < order.size();) {
        const StackCount& first = stacks[order[i]];
        std::uint64_t count = 0;
        for (; i < order.size() && same_line(first, stacks[order[i]]); ++i) count += stacks[order[i]].count;
        text.clear();
        if (by_thread) text = thread_texts[first.thread];
        for (FrameId id : first.frames) {
            if (!text.empty()) text += ';';
            text += frame_texts[id];
        }
        if (!text.empty()) out << text << ' ' << count << '\n';
    }
}

}  // namespace pysample::exporters
