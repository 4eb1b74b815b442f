#include <doctest/doctest.h>
#include <pthread.h>
#include <unistd.h>

#include <algorithm>
#include <numeric>
#include <optional>
#include <thread>

#include "attach/maps.hpp"
#include "attach/memory.hpp"
#include "attach/range_cache.hpp"
#include "attach/threads.hpp"

using namespace pysample::attach;

TEST_CASE("maps lines are parsed with permissions, offsets and paths with spaces") {
    const char* text =
        "55d0c9a00000-55d0c9a01000 r--p 00000000 fe:01 1234   /usr/bin/python3.11\n"
        "7f1c2a000000-7f1c2a021000 rw-p 00000000 00:00 0 \n"
        "7f1c2b000000-7f1c2b200000 r-xp 0001f000 fe:01 99 /opt/my dir/libpython3.12.so.1.0\n"
        "garbage line\n"
        "7ffd1e000000-7ffd1e021000 rw-p 00000000 00:00 0                          [stack]\n";
    auto maps = parse_maps(text);
    REQUIRE(maps.size() == 4);
    CHECK(maps[0].start == 0x55d0c9a00000);
    CHECK(maps[0].end == 0x55d0c9a01000);
    CHECK(maps[0].perms == "r--p");
    CHECK(maps[0].path == "/usr/bin/python3.11");
    CHECK(maps[1].path.empty());
    CHECK(maps[2].offset == 0x1f000);
    CHECK(maps[2].path == "/opt/my dir/libpython3.12.so.1.0");
    CHECK(maps[3].path == "[stack]");
    CHECK(first_mapping_of(maps, "/usr/bin/python3.11") == &maps[0]);
    CHECK(first_mapping_of(maps, "/nope") == nullptr);
}

TEST_CASE("maps lines whose range is empty or backwards are skipped") {
    // A [vdso] line taken as ending before it starts would size its image copy from a wrapped length.
    auto maps = parse_maps(
        "7f0000002000-7f0000001000 r-xp 00000000 00:00 0 [vdso]\n"
        "7f0000003000-7f0000003000 r--p 00000000 00:00 0 /empty\n"
        "7f0000004000-7f0000005000 r--p 00000000 00:00 0 /ok\n");
    REQUIRE(maps.size() == 1);
    CHECK(maps[0].path == "/ok");
}

TEST_CASE("process memory reads this process, singly and batched, and reports failures") {
    for (auto backend : {ProcessMemory::Backend::VmReadv, ProcessMemory::Backend::ProcMem}) {
        CAPTURE(static_cast<int>(backend));
        ProcessMemory memory(::getpid(), backend);
        std::vector<std::uint64_t> values(1000);
        std::iota(values.begin(), values.end(), 7);
        std::uint64_t one = 0;
        REQUIRE(memory.read_value(reinterpret_cast<std::uint64_t>(&values[10]), one));
        CHECK(one == 17);

        std::vector<std::uint64_t> copies(3);
        std::vector<ReadRequest> requests = {
            {reinterpret_cast<std::uint64_t>(&values[0]), &copies[0], 8},
            {8, &copies[1], 8},  // unmapped: must fail alone
            {reinterpret_cast<std::uint64_t>(&values[999]), &copies[2], 8},
        };
        CHECK(memory.read_many(requests) == 2);
        CHECK(requests[0].done);
        CHECK_FALSE(requests[1].done);
        CHECK(requests[2].done);
        CHECK(copies[0] == 7);
        CHECK(copies[2] == 1006);
        CHECK_FALSE(memory.read_value(8, one));
        CHECK(memory.failed_reads() >= 2);
    }
}

TEST_CASE("page cache returns the same bytes as direct reads, across page boundaries") {
    ProcessMemory memory(::getpid());
    PageCache cache(memory);
    std::vector<std::uint8_t> data(20000);
    for (std::size_t i = 0; i < data.size(); ++i) data[i] = static_cast<std::uint8_t>(i * 31);
    std::vector<std::uint8_t> out(9000);
    REQUIRE(cache.read(reinterpret_cast<std::uint64_t>(data.data()) + 1000, out.data(), out.size()));
    CHECK(std::equal(out.begin(), out.end(), data.begin() + 1000));
    data[5000] = 1;  // cached until clear()
    std::uint8_t byte = 0;
    REQUIRE(cache.read_value(reinterpret_cast<std::uint64_t>(&data[5000]), byte));
    CHECK(byte == static_cast<std::uint8_t>(5000 * 31));
    cache.clear();
    REQUIRE(cache.read_value(reinterpret_cast<std::uint64_t>(&data[5000]), byte));
    CHECK(byte == 1);
}

TEST_CASE("page cache prefetches the last sample's pages in one batch") {
    ProcessMemory memory(::getpid());
    PageCache cache(memory);
    // Each read region sits in the middle of its own 64 KiB block, so no two read pages touch.
    constexpr std::size_t kMiddle = 4096;
    std::vector<std::uint64_t> a(8192, 1);
    std::vector<std::uint64_t> b(8192, 2);
    std::vector<std::uint64_t> c(8192, 3);
    auto address = [](const std::vector<std::uint64_t>& v, std::size_t i) {
        return reinterpret_cast<std::uint64_t>(&v[kMiddle + i]);
    };
    std::uint64_t value = 0;
    std::vector<std::uint64_t> span(1491);
    REQUIRE(cache.read_value(address(b, 0), value));
    REQUIRE(cache.read(address(a, 10), span.data(), span.size() * 8));  // a[10] to a[1500]: adjacent pages
    CHECK(cache.misses() == 1 + ((address(a, 1500) >> 12) - (address(a, 10) >> 12) + 1));
    cache.clear();
    // Runs in the order of first use: b's page, then a's pages merged into one run.
    REQUIRE(cache.plan().size() == 2);
    CHECK(cache.plan()[0].first == (address(b, 0) & ~std::uint64_t{4095}));
    CHECK(cache.plan()[1].first == (address(a, 10) & ~std::uint64_t{4095}));
    CHECK(cache.plan()[1].second == ((address(a, 1500) >> 12) - (address(a, 10) >> 12) + 1));

    a[kMiddle + 1500] = 77;
    b[kMiddle] = 88;
    CHECK(cache.prefetch() == 2);
    REQUIRE(cache.read_value(address(a, 1500), value));
    CHECK(value == 77);
    REQUIRE(cache.read_value(address(b, 0), value));
    CHECK(value == 88);
    CHECK(cache.misses() == 0);
    REQUIRE(cache.read_value(address(c, 5), value));  // c's page was not in the batch
    CHECK(value == 3);
    CHECK(cache.misses() == 1);
}

TEST_CASE("range cache copies the last sample's ranges in one batch, each group's together") {
    ProcessMemory memory(::getpid());
    RangeCache cache(memory);
    // Regions far apart, so that no two ranges merge unless they are meant to.
    std::vector<std::uint64_t> a(8192, 1);
    std::vector<std::uint64_t> b(8192, 2);
    std::vector<std::uint64_t> c(8192, 3);
    std::vector<std::uint64_t> d(8192, 4);
    auto address = [](const std::vector<std::uint64_t>& v, std::size_t i) {
        return reinterpret_cast<std::uint64_t>(&v[4096 + i]);
    };
    std::uint64_t value = 0;
    std::vector<std::uint64_t> header(16);
    // The first group reads b's 16 words (a thread state, say) and c; the second reads one of b's
    // words again (its thread's frame pointer), then a[0] and a[100] (frames 800 bytes apart).
    REQUIRE(cache.read(address(b, 0), header.data(), header.size() * 8));
    REQUIRE(cache.read_value(address(c, 0), value));
    cache.begin_group();
    REQUIRE(cache.read_value(address(b, 3), value));
    CHECK(value == 2);
    REQUIRE(cache.read_value(address(a, 0), value));
    REQUIRE(cache.read_value(address(a, 100), value));
    CHECK(cache.misses() == 4);  // b's word came with its 16 words
    cache.clear();
    using Range = std::pair<std::uint64_t, std::size_t>;
    REQUIRE(cache.plan().size() == 4);
    CHECK(cache.plan()[0] == Range{address(b, 0), 128});
    CHECK(cache.plan()[1] == Range{address(c, 0), 8});
    CHECK(cache.plan()[2] == Range{address(b, 3), 8});
    CHECK(cache.plan()[3] == Range{address(a, 0), 808});  // closer than kMergeGap: one range

    b[4096 + 3] = 55;
    a[4096 + 100] = 77;
    CHECK(cache.prefetch() == 4);
    b[4096 + 3] = 66;  // after the batch: not seen within this sample
    REQUIRE(cache.read(address(b, 0), header.data(), header.size() * 8));
    CHECK(header[3] == 55);
    cache.begin_group();
    REQUIRE(cache.read_value(address(b, 3), value));
    CHECK(value == 55);
    REQUIRE(cache.read_value(address(a, 100), value));
    CHECK(value == 77);
    CHECK(cache.misses() == 0);
    REQUIRE(cache.read_value(address(d, 5), value));  // not in the batch: read on demand, then held
    CHECK(value == 4);
    d[4096 + 5] = 9;
    REQUIRE(cache.read_value(address(d, 5), value));
    CHECK(value == 4);
    CHECK(cache.misses() == 1);
    cache.refresh();  // read afresh
    REQUIRE(cache.read_value(address(d, 5), value));
    CHECK(value == 9);
}

TEST_CASE("range cache keeps the latest copy of bytes held twice, and reads large ranges directly") {
    ProcessMemory memory(::getpid());
    RangeCache cache(memory);
    std::vector<std::uint64_t> a(40000, 1);
    auto address = [&](std::size_t i) { return reinterpret_cast<std::uint64_t>(&a[i]); };
    std::uint64_t value = 0;
    std::vector<std::uint64_t> block(64);
    REQUIRE(cache.read(address(1000), block.data(), block.size() * 8));
    a[1010] = 5;
    REQUIRE(cache.read_value(address(1010), value));  // held
    CHECK(value == 1);
    // A read reaching past the held bytes copies them again: reads then see the later copy.
    std::vector<std::uint64_t> wider(400);
    REQUIRE(cache.read(address(1000), wider.data(), wider.size() * 8));
    CHECK(wider[10] == 5);
    REQUIRE(cache.read_value(address(1010), value));
    CHECK(value == 5);
    CHECK(cache.misses() == 2);
    std::vector<std::uint64_t> large(RangeCache::kMaxCachedRead / 8 + 1);
    REQUIRE(cache.read(address(2000), large.data(), large.size() * 8));
    CHECK(large[0] == 1);
    CHECK_FALSE(cache.read(0xfffffffffffff100ULL, block.data(), 256));
}

TEST_CASE("page cache refuses addresses beyond user space instead of walking pages past the end") {
    ProcessMemory memory(::getpid());
    PageCache cache(memory);
    std::vector<std::uint8_t> out(3000);
    CHECK_FALSE(cache.read(0xfffffffffffff100ULL, out.data(), out.size()));
    CHECK_FALSE(cache.read(0xffffffffffffff00ULL, out.data(), 256));
}

TEST_CASE("threads of this process are listed with their state") {
    auto tids = list_threads(::getpid());
    REQUIRE_FALSE(tids.empty());
    CHECK(std::find(tids.begin(), tids.end(), ::getpid()) != tids.end());
    auto status = read_thread_status(::getpid(), ::getpid());
    REQUIRE(status);
    CHECK(status->state == 'R');
    CHECK(status->name == "unit_tests");
    ThreadStateReader reader(::getpid());
    auto states = reader.read_all();
    REQUIRE_FALSE(states.empty());
    CHECK(process_exists(::getpid()));
}

TEST_CASE("the kernel tid is found through a pthread id, for this thread and another") {
    REQUIRE(pthread_tid_offset());
    ProcessMemory memory(::getpid());
    auto tid = tid_of_pthread(memory, static_cast<std::uint64_t>(::pthread_self()));
    REQUIRE(tid);
    CHECK(*tid == ::gettid());
    pid_t other_tid = 0;
    std::optional<pid_t> found;
    std::thread other([&] {
        other_tid = ::gettid();
        found = tid_of_pthread(memory, static_cast<std::uint64_t>(::pthread_self()));
    });
    other.join();
    REQUIRE(found);
    CHECK(*found == other_tid);
}
