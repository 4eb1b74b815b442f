// The stack walker and the code-object cache over a memory image made of the input, as they would
// read a process whose memory changes under them or holds anything at all.
//
// Input: a byte choosing the Python version, a byte of flags, then up to four regions, each a
// 2-byte little-endian length and that many bytes, mapped at kRegionBases. The first word of region
// 0 is the interpreter's head of its thread list. Bit 0 of the flags makes the code cache accept
// any type; otherwise code objects have ob_type == kCodeType.
//
// Every thread is walked directly, then through a PageCache and through a RangeCache, twice each
// (the second time as a following sample, with the cache's plan prefetched and trusted code
// entries); the memory does not change, so all walks must agree.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "attach/memory.hpp"
#include "attach/range_cache.hpp"
#include "model/layout.hpp"
#include "model/python_version.hpp"
#include "model/stack_walker.hpp"
#include "symbolize/pycode.hpp"

using namespace pysample;

namespace {

constexpr std::uint64_t kRegionBases[] = {0x10000, 0x7f1200000000, 0x7ffc00000000, 0x555500000000};
constexpr std::uint64_t kCodeType = 0x555500000040;
constexpr std::size_t kMaxThreadsWalked = 16;
constexpr std::int64_t kMaxCodeBytes = 4096;
constexpr std::pair<int, int> kVersions[] = {{2, 7},  {3, 6},  {3, 7},  {3, 8},  {3, 9}, {3, 10},
                                             {3, 11}, {3, 12}, {3, 13}, {3, 14}, {3, 15}};

void require(bool condition) {
    if (!condition) std::abort();
}

class ImageMemory final : public attach::Memory {
public:
    void map(std::uint64_t base, std::span<const std::uint8_t> bytes) { regions_.push_back({base, bytes}); }

    bool read(std::uint64_t addr, void* dest, std::size_t len) override {
        if (len == 0) return true;
        for (const auto& [base, bytes] : regions_) {
            if (addr < base || addr - base > bytes.size() || len > bytes.size() - (addr - base)) continue;
            std::memcpy(dest, bytes.data() + (addr - base), len);
            return true;
        }
        return false;
    }

private:
    std::vector<std::pair<std::uint64_t, std::span<const std::uint8_t>>> regions_;
};

void map_regions(std::span<const std::uint8_t> rest, ImageMemory& memory) {
    for (std::uint64_t base : kRegionBases) {
        if (rest.size() < 2) return;
        std::size_t length = std::min<std::size_t>(rest[0] | (rest[1] << 8), rest.size() - 2);
        memory.map(base, rest.subspan(2, length));
        rest = rest.subspan(2 + length);
    }
}

struct FrameSeen {
    std::string function;
    std::string filename;
    int line = 0;
    std::uint64_t address = 0;
    bool operator==(const FrameSeen&) const = default;
};

struct ThreadSeen {
    std::uint64_t address = 0;
    std::uint64_t top_frame = 0;
    sampler::WalkResult result = sampler::WalkResult::Ok;
    std::vector<FrameSeen> frames;
    std::vector<std::uint32_t> call_ends;
    bool operator==(const ThreadSeen&) const = default;
};

struct WalkSeen {
    sampler::WalkResult result = sampler::WalkResult::Ok;
    std::vector<ThreadSeen> threads;
    bool operator==(const WalkSeen&) const = default;
};

void check_calls(const sampler::EvalCalls& calls, std::size_t frame_count) {
    require(std::is_sorted(calls.ends.begin(), calls.ends.end()));
    require(calls.ends.empty() || calls.ends.back() <= frame_count);
}

// The line of every instruction of the code (its first ones where the size is unknown or large).
void decode_lines(const symbolize::CodeInfo& code) {
    const std::int64_t end = code.code_bytes >= 0 ? std::min<std::int64_t>(code.code_bytes, kMaxCodeBytes) : 256;
    for (std::int64_t offset = -2; offset < end; offset += 2) (void)code.line_at(offset);
}

ThreadSeen walk_thread(sampler::StackWalker& walker, sampler::ThreadStateRef thread) {
    ThreadSeen seen{thread.address, thread.top_frame, {}, {}, {}};
    std::vector<sampler::PyFrame> frames;
    sampler::EvalCalls calls;
    seen.result = walker.frames(thread, frames, &calls);
    if (seen.result != sampler::WalkResult::Ok) return seen;
    check_calls(calls, frames.size());
    for (const auto& frame : frames) {
        require(frame.code != nullptr);
        decode_lines(*frame.code);
        seen.frames.push_back({frame.code->function, frame.code->filename, frame.line, frame.address});
    }
    seen.call_ends = std::move(calls.ends);
    const std::uint64_t top_frame = thread.top_frame;
    if (walker.refresh_top_frame(thread) == sampler::WalkResult::Ok) require(thread.top_frame == top_frame);
    return seen;
}

// `range_cache`, when given, is the walker's memory: each thread's walk is a group of its own, as
// the sampler reads them.
WalkSeen walk(sampler::StackWalker& walker, std::uint64_t interpreter, attach::RangeCache* range_cache = nullptr) {
    WalkSeen seen;
    std::vector<sampler::ThreadStateRef> threads;
    seen.result = walker.threads(interpreter, threads);
    for (std::size_t i = 0; i < threads.size() && i < kMaxThreadsWalked; ++i) {
        if (range_cache != nullptr) range_cache->begin_group();
        seen.threads.push_back(walk_thread(walker, threads[i]));
    }
    return seen;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size < 2) return 0;
    const auto [major, minor] = kVersions[data[0] % std::size(kVersions)];
    const std::optional<sampler::PythonLayout> layout = sampler::find_layout(major, minor);
    require(layout.has_value());
    const std::uint64_t code_type = (data[1] & 1) != 0 ? 0 : kCodeType;
    ImageMemory memory;
    map_regions({data + 2, size - 2}, memory);
    const std::uint64_t interpreter = kRegionBases[0] - static_cast<std::uint64_t>(layout->interp_threads_head);
    const symbolize::CodeObjectLayout code_layout = sampler::code_object_layout(*layout);

    symbolize::CodeCache direct_codes(memory, code_layout, code_type);
    sampler::StackWalker direct(*layout, memory, direct_codes);
    const WalkSeen expected = walk(direct, interpreter);

    attach::PageCache pages(memory);
    attach::PageCache code_pages(memory);
    symbolize::CodeCache codes(code_pages, code_layout, code_type);
    sampler::StackWalker cached(*layout, pages, codes);
    for (int sample = 0; sample < 2; ++sample) {
        codes.new_sample();
        pages.prefetch();
        require(walk(cached, interpreter) == expected);
        pages.clear();
        code_pages.clear();
    }

    attach::RangeCache ranges(memory);
    symbolize::CodeCache range_codes(code_pages, code_layout, code_type);
    sampler::StackWalker ranged(*layout, ranges, range_codes);
    for (int sample = 0; sample < 2; ++sample) {
        range_codes.new_sample();
        ranges.prefetch();
        require(walk(ranged, interpreter, &ranges) == expected);
        ranges.clear();
        code_pages.clear();
    }
    return 0;
}
