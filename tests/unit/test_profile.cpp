#include <doctest/doctest.h>

#include <numeric>
#include <sstream>
#include <vector>

#include "exporters/exporters.hpp"
#include "exporters/profile.hpp"

using namespace pysample::exporters;

namespace {

// A stack of `depth` frames that differs from the one before it in its last two frames.
std::vector<FrameId> numbered_stack(std::uint32_t n, std::size_t depth) {
    std::vector<FrameId> frames(depth, 1);
    frames[depth - 2] = n % 1000;
    frames[depth - 1] = n / 1000;
    return frames;
}

}  // namespace

TEST_CASE("stacks stored across many frame blocks keep their frames and their ids") {
    Profile profile;
    constexpr std::uint32_t kStacks = 50'000;  // 400,000 frames: several blocks
    for (std::uint32_t n = 0; n < kStacks; ++n) CHECK(profile.add(n % 3, numbered_stack(n, 8)) == n);
    for (std::uint32_t n = 0; n < kStacks; n += 997) {
        auto expected = numbered_stack(n, 8);
        const StackCount& stack = profile.stacks()[n];
        CHECK(stack.thread == n % 3);
        CHECK(std::equal(stack.frames.begin(), stack.frames.end(), expected.begin(), expected.end()));
        CHECK(profile.add(n % 3, expected) == n);        // found again, not added twice
        CHECK(profile.add((n + 1) % 3, expected) != n);  // the same frames in another thread are another stack
    }
    CHECK(profile.stacks()[0].count == 2);
}

TEST_CASE("a stack longer than a block gets a block of its own") {
    Profile profile;
    std::vector<FrameId> deep(100'000);
    std::iota(deep.begin(), deep.end(), 0);
    profile.add(0, std::vector<FrameId>{1, 2, 3});
    auto id = profile.add(0, deep);
    profile.add(0, std::vector<FrameId>{4, 5});
    REQUIRE(profile.stacks()[id].frames.size() == deep.size());
    CHECK(profile.stacks()[id].frames.back() == 99'999);
    CHECK(profile.stacks()[0].frames[2] == 3);
    CHECK(profile.stacks()[2].frames[1] == 5);
}

TEST_CASE("past its frame budget the profile counts new stacks under one frame, totals exact") {
    Profile profile(1'000'000, 1'000, 100);
    for (std::uint32_t n = 0; n < 50; ++n) profile.add(0, numbered_stack(n, 10), 2);
    CHECK(profile.distinct_stacks() == 11);  // ten stacks fill the budget, then one "[other stacks]"
    CHECK(profile.total_count() == 100);
    const StackCount& other = profile.stacks().back();
    REQUIRE(other.frames.size() == 1);
    CHECK(profile.frame(other.frames[0]).function == "[other stacks]");
    CHECK(other.count == 80);
    CHECK(profile.add(0, numbered_stack(3, 10)) == 3);  // known stacks are still counted as themselves
}

TEST_CASE("a moved profile keeps its stacks' frames") {
    Profile profile;
    profile.add(1, std::vector<FrameId>{7, 8, 9});
    Profile moved = std::move(profile);
    REQUIRE(moved.stacks().size() == 1);
    CHECK(moved.stacks()[0].frames[2] == 9);
    CHECK(moved.add(1, std::vector<FrameId>{7, 8, 9}) == 0);
}

TEST_CASE("frames are interned once each however often they are added") {
    Profile profile;
    for (int round = 0; round < 3; ++round) {
        for (int line = 1; line <= 5000; ++line) {
            CHECK(profile.intern({"f", "/app/x.py", line, 1}) == static_cast<FrameId>(line - 1));
        }
    }
    CHECK(profile.frames().size() == 5000);
    CHECK(profile.intern({"g", "/app/x.py", 1, 1}) == 5000);
}

TEST_CASE("the profile's own storage grows by well under 100 bytes per distinct stack of 8 frames") {
    Profile profile;
    constexpr std::uint32_t kStacks = 200'000;
    for (std::uint32_t n = 0; n < kStacks; ++n) profile.add(0, numbered_stack(n, 8));
    CHECK(profile.distinct_stacks() == kStacks);
    // 32 bytes of record, 32 of frames, about 16 of index, and the slack of growing vectors.
    CHECK(profile.memory_bytes() < kStacks * 100);
}

TEST_CASE("collapsed output merges stacks that print the same: other threads, or lines left out") {
    Profile profile;
    FrameId main_at_1 = profile.intern({"main", "/app/x.py", 1, 1});
    FrameId main_at_2 = profile.intern({"main", "/app/x.py", 2, 1});
    FrameId work = profile.intern({"work", "/app/x.py", 9, 8});
    auto first = profile.intern_thread({100, "MainThread"});
    auto second = profile.intern_thread({101, "worker"});
    profile.add(first, std::vector<FrameId>{main_at_1, work}, 2);
    profile.add(second, std::vector<FrameId>{main_at_2, work}, 3);
    profile.add(second, std::vector<FrameId>{main_at_1, work}, 4);
    profile.add(first, std::vector<FrameId>{main_at_2}, 1);

    std::ostringstream with_lines;
    write_collapsed(profile, {}, with_lines);
    CHECK(with_lines.str() ==
          "main (/app/x.py:1);work (/app/x.py:9) 6\n"
          "main (/app/x.py:2) 1\n"
          "main (/app/x.py:2);work (/app/x.py:9) 3\n");

    WriteOptions no_lines;
    no_lines.line_numbers = false;
    std::ostringstream without_lines;
    write_collapsed(profile, no_lines, without_lines);
    CHECK(without_lines.str() ==
          "main (/app/x.py) 1\n"
          "main (/app/x.py);work (/app/x.py) 9\n");
}
