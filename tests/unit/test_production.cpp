// What real hosts show pysample: deleted files in the maps, PID namespaces, threads that switch
// stacks, periodic programs.
#include <doctest/doctest.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <vector>

#include "attach/maps.hpp"
#include "attach/threads.hpp"
#include "engine/stack_bases.hpp"
#include "engine/timer.hpp"
#include "exporters/profile.hpp"

using namespace pysample;

TEST_CASE("maps: a deleted file's path loses its marker, and an escaped newline is decoded") {
    auto maps = attach::parse_maps(
        "7f0000000000-7f0000001000 r--p 00000000 fe:01 4242 /tmp/lib/libpython3.12.so.1.0 (deleted)\n"
        "7f0000001000-7f0000002000 r--p 00000000 fe:01 4243 /tmp/odd\\012name/python3.11\n"
        "7f0000002000-7f0000003000 r--p 00000000 fe:01 4244 /tmp/plain (deleted) not at the end\n");
    REQUIRE(maps.size() == 3);
    CHECK(maps[0].deleted);
    CHECK(maps[0].path == "/tmp/lib/libpython3.12.so.1.0");
    CHECK(maps[0].inode == 4242);
    CHECK(maps[0].device_major == 0xfe);
    CHECK(maps[0].device_minor == 1);
    CHECK_FALSE(maps[1].deleted);
    CHECK(maps[1].path == "/tmp/odd\nname/python3.11");
    CHECK_FALSE(maps[2].deleted);
}

TEST_CASE("maps: a mapped file replaced on disk is opened through map_files") {
    // This executable's own mapping: the file at its path is the one mapped, until it is not.
    auto maps = attach::read_maps(::getpid());
    char self[4096];
    auto length = ::readlink("/proc/self/exe", self, sizeof self - 1);
    REQUIRE(length > 0);
    self[length] = '\0';
    auto mapping = std::find_if(maps.begin(), maps.end(), [&](const auto& m) { return m.path == self; });
    REQUIRE(mapping != maps.end());
    bool replaced = true;
    CHECK(attach::openable_mapped_file(::getpid(), *mapping, &replaced).ends_with(self));
    CHECK_FALSE(replaced);
    auto other = *mapping;
    other.inode += 1;  // another file now sits at the path
    auto path = attach::openable_mapped_file(::getpid(), other, &replaced);
    CHECK(replaced);
    CHECK(path.find("/map_files/") != std::string::npos);
    other = *mapping;
    other.deleted = true;
    CHECK(attach::openable_mapped_file(::getpid(), other, &replaced).find("/map_files/") != std::string::npos);
}

TEST_CASE("a process in pysample's own PID namespace keeps its thread ids") {
    attach::NamespaceTids tids(::getpid());
    CHECK_FALSE(tids.separate());
    CHECK(tids.to_host(::gettid()) == ::gettid());
    CHECK(tids.to_inner(::gettid()) == ::gettid());
    CHECK(attach::status_field(::getpid(), ::gettid(), "TracerPid").value_or(-1) == 0);
    CHECK(attach::status_field(::getpid(), ::gettid(), "NSpid").value_or(-1) == ::gettid());
    CHECK_FALSE(attach::status_field(::getpid(), ::gettid(), "NoSuchField").has_value());
    CHECK(attach::is_thread_of(::getpid(), ::gettid()));
    CHECK_FALSE(attach::is_thread_of(::getpid(), 1));
}

TEST_CASE("a process image changes with an exec, not with a new title") {
    auto image = attach::process_image(::getpid());
    CHECK_FALSE(image.empty());
    CHECK(attach::process_image(::getpid()) == image);
    CHECK(attach::process_image(::getppid()) != image);
}

TEST_CASE("stack bases: each thread keeps the outermost frames it was seen to end at") {
    sampler::StackBases bases;
    CHECK(bases.plausible(0x1000, 0xa));  // a thread not seen yet may end anywhere
    bases.confirm(0x1000, 0xa);
    CHECK(bases.plausible(0x1000, 0xa));
    CHECK_FALSE(bases.plausible(0x1000, 0xb));
    CHECK_FALSE(bases.switches_stacks(0x1000));
    bases.confirm(0x1000, 0xb);  // a greenlet switched in
    CHECK(bases.plausible(0x1000, 0xa));
    CHECK(bases.switches_stacks(0x1000));
    for (std::uint64_t base = 0x100; base < 0x100 + sampler::StackBases::kPerThread; ++base)
        bases.confirm(0x1000, base);
    CHECK_FALSE(bases.plausible(0x1000, 0xa));  // the oldest fell out
    CHECK(bases.plausible(0x1000, 0x100));
    CHECK(bases.plausible(0x2000, 0xa));
}

TEST_CASE("profile: a stack added with a count counts that many samples, each on the timeline") {
    exporters::Profile profile;
    auto thread = profile.intern_thread({1, "main"});
    std::vector<exporters::FrameId> frames{profile.intern({"f", "a.py", 1, 1})};
    auto stack = profile.add_at(10, thread, frames, 3);
    profile.add_again(20, stack, 2);
    CHECK(profile.total_count() == 5);
    CHECK(profile.stacks()[stack].count == 5);
    CHECK(profile.timeline().size() == 5);
}

TEST_CASE("samples fall anywhere in their slot: a period equal to the interval is not locked onto") {
    // 250 Hz, the phases of the deadlines the timer draws in the 4 ms period of the interval itself:
    // regular ticks, or ticks jittered by a quarter, would fall in one or two quarters of it; these
    // fall in all alike. The deadlines, not the wake-ups: on a busy machine a wake-up comes late.
    sampler::DeadlineTimer timer(250);
    std::vector<int> quarters(4);
    auto start = std::chrono::steady_clock::now();
    constexpr int kSamples = 400;
    for (int i = 0; i < kSamples; ++i) {
        auto deadline = timer.wait_next();
        auto phase = std::chrono::duration_cast<std::chrono::microseconds>(deadline - start).count() % 4000;
        ++quarters[static_cast<std::size_t>(phase / 1000)];
    }
    MESSAGE("deadlines per quarter of the 4 ms interval: " << quarters[0] << " " << quarters[1] << " " << quarters[2]
                                                           << " " << quarters[3]);
    // 100 expected in each; below 50 is over 5 standard deviations (8.7) away.
    for (int count : quarters) CHECK(count > kSamples / 8);
}
