// The memory of one sample, read in as few system calls and as little time as possible.
#pragma once

#include <cstddef>
#include <cstdint>
#include <utility>
#include <vector>

#include "attach/memory.hpp"

namespace pysample::attach {

// Caches the byte ranges a sample reads until clear(), so that every read of the same bytes within
// a sample sees the same copy, and remembers them: prefetch() copies the previous sample's ranges
// again, all in one call to the backing reader (one process_vm_readv). Copying exactly what a walk
// reads, rather than whole pages, takes a fraction of the time, and the less time a copy of a
// running thread's stack takes, the less its stack changes while it is copied.
//
// The plan keeps what was read within the last kPlanAge samples: a thread whose stack alternates
// between shapes (a call made, returned; a generator resumed, suspended) is then copied whole in
// one call whatever its shape.
//
// A sample is read in groups (begin_group(): one per thread's stack). The batch copies each group's
// ranges together, in the order the group first read them: a thread's state, then its frames from
// the innermost out. A range read again by a later group is copied again there, so a thread state
// that the thread list walk read first is copied once more right before its own thread's frames,
// and reads in that group see the later copy.
class RangeCache final : public Memory {
public:
    explicit RangeCache(Memory& backing);
    bool read(std::uint64_t addr, void* dest, std::size_t len) override;
    // Ends a sample: forgets the cached bytes; the ranges read within the last kPlanAge samples
    // become the prefetch plan.
    void clear();
    // Forgets the cached bytes within a sample (to read them afresh), still recording the reads.
    void refresh();
    // Reads from now on belong to a new group, copied after the earlier groups' ranges.
    void begin_group();
    // Copies the plan's ranges in one batch; returns how many ranges it asked for.
    std::size_t prefetch();
    // Copies again, in one batch, what the current group has read so far: reads in the group then
    // see the new copies, other groups' bytes stay as they were.
    void reread_group();
    // Reads since the last clear() that the batch did not hold.
    std::size_t misses() const { return misses_; }
    // The plan as (address, length) ranges, in the order they are copied.
    const std::vector<std::pair<std::uint64_t, std::size_t>>& plan() const { return plan_; }

    // Ranges closer than this are copied as one: a range of its own costs more than the bytes between.
    static constexpr std::size_t kMergeGap = 1024;
    // Reads not held by the batch are rounded out to this alignment: nearby frames come with them.
    static constexpr std::uint64_t kMissAlignment = 256;
    // The most that one read on demand copies, when misses come one next to the other.
    static constexpr std::uint64_t kMaxMissWindow = 64 * 1024;
    // How far from the last read on demand a miss counts as next to it (frames lie a few hundred
    // bytes apart).
    static constexpr std::uint64_t kMissNeighbourhood = 4096;
    static constexpr std::size_t kMaxPlanRanges = 128;
    static constexpr std::uint32_t kPlanAge = 16;
    static constexpr std::size_t kMaxPlanBytes = 1 << 20;
    static constexpr std::size_t kMaxNotes = 8192;
    // A single read larger than this goes straight to the backing reader, uncached.
    static constexpr std::size_t kMaxCachedRead = 64 * 1024;

private:
    struct Held {
        std::uint64_t addr;
        std::size_t len;
        std::size_t offset;    // into buffer_
        std::uint64_t copied;  // order of the copy: the latest copy of overlapping ranges is read
        bool overlapped;       // another range held overlaps it
    };
    struct Note {
        std::uint64_t addr;
        std::size_t len;
        std::uint64_t order;  // group, then order of first read within the group
        std::uint32_t age;    // samples since it was last read
    };

    const Held* find(std::uint64_t addr, std::size_t len);
    const Held* fetch(std::uint64_t addr, std::size_t len);
    const Held* fetch_exactly(std::uint64_t addr, std::size_t len, std::uint64_t first, std::uint64_t end);
    std::size_t reserve(std::size_t len);
    void hold(std::uint64_t addr, std::size_t len, std::size_t offset);
    void note(std::uint64_t addr, std::size_t len);
    void age_kept_notes();
    void merge_notes(std::vector<Note>& notes, std::vector<std::pair<std::uint64_t, std::size_t>>& ranges);
    void copy_ranges(const std::vector<std::pair<std::uint64_t, std::size_t>>& ranges);

    Memory& backing_;
    std::vector<std::uint8_t> buffer_;  // the sample's copies; grows, never shrinks
    std::size_t buffer_used_ = 0;
    std::vector<Held> held_;  // sorted by address; may overlap
    std::size_t longest_held_ = 0;
    static constexpr std::size_t kNone = ~std::size_t{0};
    std::size_t last_ = kNone;  // index into held_ of the range the last read came from
    std::uint64_t copies_ = 0;
    std::uint32_t group_ = 0;
    std::size_t misses_ = 0;
    std::uint64_t last_miss_ = 0;  // address of the last read on demand, 0 for none since refresh()
    std::uint64_t miss_window_ = kMissAlignment;
    std::vector<Note> notes_;
    std::vector<Note> kept_;        // the last kPlanAge samples' reads, by group and address
    std::vector<Note> last_notes_;  // the reads of the last sample that was planned, as they came
    bool only_last_reads_kept_ = false;
    std::vector<std::pair<std::uint64_t, std::size_t>> plan_;
    std::vector<std::pair<std::uint64_t, std::size_t>> group_ranges_;
    // Working space, kept so that a sample allocates nothing.
    std::vector<Note> scratch_notes_;
    std::vector<std::pair<std::uint64_t, std::pair<std::uint64_t, std::size_t>>> scratch_runs_;  // order, range
    std::vector<ReadRequest> requests_;
};

}  // namespace pysample::attach
