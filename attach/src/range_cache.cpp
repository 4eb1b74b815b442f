#include "attach/range_cache.hpp"

#include <algorithm>
#include <cstring>
#include <tuple>

namespace pysample::attach {
namespace {

// A pointer out of a torn stack may be anything: no read may run past user space or wrap.
constexpr std::uint64_t kUserSpaceEnd = std::uint64_t{1} << 56;  // 5-level paging's limit

std::uint64_t align_down(std::uint64_t value, std::uint64_t alignment) { return value & ~(alignment - 1); }

}  // namespace

RangeCache::RangeCache(Memory& backing) : backing_(backing) {}

bool RangeCache::read(std::uint64_t addr, void* dest, std::size_t len) {
    if (len == 0) return true;
    if (addr >= kUserSpaceEnd || len > kUserSpaceEnd - addr) return false;
    if (len > kMaxCachedRead) return backing_.read(addr, dest, len);
    note(addr, len);
    const Held* held = find(addr, len);
    if (held == nullptr) held = fetch(addr, len);
    if (held == nullptr) return false;
    std::memcpy(dest, buffer_.data() + held->offset + (addr - held->addr), len);
    return true;
}

// Of the ranges holding [addr, addr + len), the one copied last. A walk reads one range after
// another (a thread's frames lie together): the range of the last read is tried first, when no
// other range overlaps it.
const RangeCache::Held* RangeCache::find(std::uint64_t addr, std::size_t len) {
    if (last_ < held_.size()) {
        const Held& last = held_[last_];
        if (!last.overlapped && last.addr <= addr && addr + len <= last.addr + last.len) return &last;
    }
    auto it = std::upper_bound(held_.begin(), held_.end(), addr,
                               [](std::uint64_t value, const Held& held) { return value < held.addr; });
    const Held* best = nullptr;
    while (it != held_.begin()) {
        --it;
        if (it->addr + longest_held_ <= addr) break;
        if (addr + len <= it->addr + it->len && (best == nullptr || it->copied > best->copied)) best = &*it;
    }
    if (best != nullptr) last_ = static_cast<std::size_t>(best - held_.data());
    return best;
}

// Bytes the batch did not hold, read on demand with some of their surroundings. A miss next to the
// previous one (a deep stack walked frame after frame past what the batch holds) widens the window
// read, towards where the walk is going, so that a walk of thousands of frames costs tens of reads
// rather than thousands.
const RangeCache::Held* RangeCache::fetch(std::uint64_t addr, std::size_t len) {
    std::uint64_t reach = miss_window_ + kMissNeighbourhood;
    bool next_to_last = last_miss_ != 0 && addr + len + reach >= last_miss_ && addr <= last_miss_ + reach;
    miss_window_ = next_to_last ? std::min(miss_window_ * 2, kMaxMissWindow) : kMissAlignment;
    bool downwards = next_to_last && addr < last_miss_;
    last_miss_ = addr;
    std::uint64_t first = align_down(addr, kMissAlignment);
    std::uint64_t end = align_down(addr + len + kMissAlignment - 1, kMissAlignment);
    if (miss_window_ > kMissAlignment) {
        if (downwards) {
            first = end - std::min<std::uint64_t>(end, std::max<std::uint64_t>(miss_window_, end - first));
        } else {
            end = std::min(kUserSpaceEnd, first + std::max<std::uint64_t>(miss_window_, end - first));
        }
    }
    if (const Held* held = fetch_exactly(addr, len, first, end)) return held;
    miss_window_ = kMissAlignment;
    return nullptr;
}

// Reads [first, end), which holds [addr, addr + len); bytes at the edge of a mapping may be
// readable where their surroundings are not, so on failure the aligned neighbourhood, then the
// bytes alone, are tried.
const RangeCache::Held* RangeCache::fetch_exactly(std::uint64_t addr, std::size_t len, std::uint64_t first,
                                                  std::uint64_t end) {
    const std::pair<std::uint64_t, std::uint64_t> tries[] = {
        {first, end},
        {align_down(addr, kMissAlignment), align_down(addr + len + kMissAlignment - 1, kMissAlignment)},
        {addr, addr + len}};
    for (const auto& [from, to] : tries) {
        std::size_t offset = reserve(static_cast<std::size_t>(to - from));
        if (backing_.read(from, buffer_.data() + offset, static_cast<std::size_t>(to - from))) {
            ++misses_;
            hold(from, static_cast<std::size_t>(to - from), offset);
            return find(addr, len);
        }
        buffer_used_ = offset;
    }
    return nullptr;
}

std::size_t RangeCache::reserve(std::size_t len) {
    std::size_t offset = buffer_used_;
    buffer_used_ += len;
    if (buffer_.size() < buffer_used_) buffer_.resize(std::max(buffer_used_, 2 * buffer_.size()));
    return offset;
}

void RangeCache::hold(std::uint64_t addr, std::size_t len, std::size_t offset) {
    auto it = std::upper_bound(held_.begin(), held_.end(), addr,
                               [](std::uint64_t value, const Held& held) { return value < held.addr; });
    it = held_.insert(it, Held{addr, len, offset, ++copies_, false});
    longest_held_ = std::max(longest_held_, len);
    last_ = kNone;
    // Ranges overlapping the new one: before it (starting at most longest_held_ earlier), after it.
    for (auto before = it; before != held_.begin();) {
        --before;
        if (before->addr + longest_held_ <= addr) break;
        if (before->addr + before->len > addr) before->overlapped = it->overlapped = true;
    }
    for (auto after = std::next(it); after != held_.end() && after->addr < addr + len; ++after) {
        after->overlapped = it->overlapped = true;
    }
}

// A read next to the group's previous one (a walk's frames, one after another) widens its note:
// the plan would merge them anyway.
void RangeCache::note(std::uint64_t addr, std::size_t len) {
    if (!notes_.empty() && notes_.back().order >> 32 == group_) {
        Note& last = notes_.back();
        if (addr <= last.addr + last.len + kMergeGap && last.addr <= addr + len + kMergeGap) {
            std::uint64_t end = std::max(last.addr + last.len, addr + len);
            last.addr = std::min(last.addr, addr);
            last.len = static_cast<std::size_t>(end - last.addr);
            return;
        }
    }
    if (notes_.size() >= kMaxNotes) return;
    notes_.push_back({addr, len, (std::uint64_t{group_} << 32) | notes_.size(), 0});
}

void RangeCache::clear() {
    // A sample that read what the previous one read, when nothing else is kept, leaves the plan as
    // it is: the common case, whose planning is skipped.
    bool same_reads = notes_.size() == last_notes_.size() &&
                      std::equal(notes_.begin(), notes_.end(), last_notes_.begin(), [](const Note& a, const Note& b) {
                          return a.addr == b.addr && a.len == b.len && a.order == b.order;
                      });
    if (!same_reads || !only_last_reads_kept_) {
        last_notes_.assign(notes_.begin(), notes_.end());
        age_kept_notes();
        only_last_reads_kept_ = std::all_of(kept_.begin(), kept_.end(), [](const Note& note) { return note.age == 0; });
        scratch_notes_.assign(kept_.begin(), kept_.end());
        merge_notes(scratch_notes_, plan_);
    }
    notes_.clear();
    misses_ = 0;
    group_ = 0;
    refresh();
}

// The reads of the last kPlanAge samples, each once: this sample's at age 0, the others a sample
// older, the oldest dropped.
void RangeCache::age_kept_notes() {
    auto key = [](const Note& note) { return std::tuple(note.order >> 32, note.addr, note.len); };
    std::sort(notes_.begin(), notes_.end(),
              [&](const Note& a, const Note& b) { return key(a) != key(b) ? key(a) < key(b) : a.order < b.order; });
    auto& merged = scratch_notes_;
    merged.clear();
    std::size_t k = 0;
    for (std::size_t i = 0; i < notes_.size(); ++i) {
        if (i > 0 && key(notes_[i]) == key(notes_[i - 1])) continue;  // the first read of the range counts
        for (; k < kept_.size() && key(kept_[k]) < key(notes_[i]); ++k) {
            if (kept_[k].age + 1 < kPlanAge)
                merged.push_back({kept_[k].addr, kept_[k].len, kept_[k].order, kept_[k].age + 1});
        }
        if (k < kept_.size() && key(kept_[k]) == key(notes_[i])) ++k;
        merged.push_back(notes_[i]);
    }
    for (; k < kept_.size(); ++k) {
        if (kept_[k].age + 1 < kPlanAge)
            merged.push_back({kept_[k].addr, kept_[k].len, kept_[k].order, kept_[k].age + 1});
    }
    // Samples that each read thousands of new ranges (threads coming and going by the thousand)
    // would keep too many: this sample's reads are enough then.
    if (merged.size() > kMaxNotes) {
        merged.erase(std::remove_if(merged.begin(), merged.end(), [](const Note& note) { return note.age > 0; }),
                     merged.end());
    }
    kept_.swap(merged);
}

void RangeCache::refresh() {
    held_.clear();
    last_ = kNone;
    last_miss_ = 0;
    miss_window_ = kMissAlignment;
    longest_held_ = 0;
    buffer_used_ = 0;
}

void RangeCache::begin_group() { ++group_; }

// Each group's ranges, merged where they are close, in the order the group first read them.
void RangeCache::merge_notes(std::vector<Note>& notes, std::vector<std::pair<std::uint64_t, std::size_t>>& ranges) {
    std::sort(notes.begin(), notes.end(), [](const Note& a, const Note& b) {
        return a.order >> 32 != b.order >> 32 ? a.order < b.order : a.addr < b.addr;
    });
    auto& runs = scratch_runs_;
    runs.clear();
    for (std::size_t i = 0; i < notes.size();) {
        std::uint64_t group = notes[i].order >> 32;
        std::uint64_t first = notes[i].addr;
        std::uint64_t end = first + notes[i].len;
        std::uint64_t order = notes[i].order;
        std::size_t j = i + 1;
        while (j < notes.size() && notes[j].order >> 32 == group && notes[j].addr <= end + kMergeGap) {
            end = std::max(end, notes[j].addr + notes[j].len);
            order = std::min(order, notes[j].order);
            ++j;
        }
        runs.push_back({order, {first, static_cast<std::size_t>(end - first)}});
        i = j;
    }
    std::sort(runs.begin(), runs.end());
    ranges.clear();
    std::size_t bytes = 0;
    for (const auto& [order, range] : runs) {
        if (ranges.size() == kMaxPlanRanges || bytes + range.second > kMaxPlanBytes) break;
        ranges.push_back(range);
        bytes += range.second;
    }
}

// One call to the backing reader; a range that fails (a thread exited and its memory went) leaves
// its bytes to be read on demand.
void RangeCache::copy_ranges(const std::vector<std::pair<std::uint64_t, std::size_t>>& ranges) {
    std::size_t first_offset = buffer_used_;
    for (const auto& [addr, len] : ranges) reserve(len);
    requests_.clear();
    std::size_t offset = first_offset;
    for (const auto& [addr, len] : ranges) {
        requests_.push_back({addr, buffer_.data() + offset, len});
        offset += len;
    }
    backing_.read_many(requests_);
    for (const auto& request : requests_) {
        if (!request.done) continue;
        hold(request.addr, request.len,
             static_cast<std::size_t>(static_cast<std::uint8_t*>(request.dest) - buffer_.data()));
    }
}

std::size_t RangeCache::prefetch() {
    copy_ranges(plan_);
    return plan_.size();
}

void RangeCache::reread_group() {
    auto& notes = scratch_notes_;
    notes.clear();
    for (const auto& note : notes_) {
        if (note.order >> 32 == group_) notes.push_back(note);
    }
    merge_notes(notes, group_ranges_);
    copy_ranges(group_ranges_);
}

}  // namespace pysample::attach
