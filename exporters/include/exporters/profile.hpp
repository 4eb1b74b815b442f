#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <unordered_map>
#include <vector>

namespace pysample::exporters {

struct Frame {
    std::string function;
    std::string filename;
    int line = 0;        // 0 when unknown or not recorded (--nolineno)
    int first_line = 0;  // where the function starts (co_firstlineno), 0 when unknown
    // Made by pysample rather than read from the target (a thread or process root, a marker): it
    // has no location, where every other frame shows one, if only "?".
    bool synthetic = false;
    // The plain name cProfile keys the function by (co_name), where `function` is a qualified one
    // (co_qualname, 3.11+) that differs from it; else empty.
    std::string name = {};

    const std::string& plain_name() const { return name.empty() ? function : name; }
    // A frame pysample makes, with no location: a thread or process root, a marker.
    static Frame made_by_pysample(std::string label) {
        Frame frame;
        frame.function = std::move(label);
        frame.synthetic = true;
        return frame;
    }
    bool operator==(const Frame&) const = default;
};

struct FrameHash {
    std::size_t operator()(const Frame& frame) const;
};

using FrameId = std::uint32_t;

struct ThreadInfo {
    std::uint64_t id = 0;  // the kernel thread id where known, else the pthread id
    std::string name;
    bool operator==(const ThreadInfo&) const = default;
};

// One unique stack of one thread, root first, with how many samples saw it.
struct StackCount {
    std::uint32_t thread = 0;         // index into Profile::threads()
    std::span<const FrameId> frames;  // held by the profile, valid while it lives
    std::uint64_t count = 0;
};

using StackId = std::uint32_t;

// When one sample of one thread was taken, in order: the timeline that trace formats need.
struct TimedSample {
    std::uint64_t time_us = 0;  // since the start of the run
    StackId stack = 0;          // index into Profile::stacks()
};

struct RunInfo {
    int pid = 0;
    std::string command_line;
    std::string python_version;
    double rate_hz = 0;  // the rate achieved: samples / duration_s once the run is over
    double duration_s = 0;
    std::uint64_t samples = 0;       // sampling ticks taken
    std::uint64_t errors = 0;        // ticks with a failed read or a rejected stack
    std::string start_time;          // ISO 8601
    std::int64_t start_unix_ns = 0;  // the same, in nanoseconds since the Unix epoch; 0 when unknown
    // What a thread's stack in a sample counts for: "CPU time" (the CPU the thread used), "wall-clock
    // time" (every thread, every sample), "GIL holder"; empty when not said.
    std::string counting;

    // Seconds one sample stands for.
    double interval_s() const { return rate_hz > 0 ? 1.0 / rate_hz : 0.0; }
};

// A source file the profile's frames name, as read from the target's filesystem for the formats
// that show source (annotate).
struct SourceFile {
    enum class State {
        Read,     // as the process sees it, unchanged since it started
        Changed,  // modified after the process started: its lines may not be the ones that ran
        Missing   // could not be read: lines are shown by number only
    };
    State state = State::Missing;
    std::string text;
    std::string why;  // for Changed and Missing: what was found
};

// An open-addressing index of ids by hash: the keys stay in the owner's own storage.
class IdIndex {
public:
    static constexpr std::uint32_t kNone = 0xffffffffU;
    // The id stored under this hash for which `same(id)` holds, or kNone.
    template <typename Same>
    std::uint32_t find(std::size_t hash, Same same) const {
        if (slots_.empty()) return kNone;
        auto tag = tag_of(hash);
        for (std::size_t i = tag & mask(); slots_[i].id != kNone; i = (i + 1) & mask()) {
            if (slots_[i].tag == tag && same(slots_[i].id)) return slots_[i].id;
        }
        return kNone;
    }
    void insert(std::size_t hash, std::uint32_t id);
    std::size_t bytes() const { return slots_.capacity() * sizeof(Slot); }

private:
    struct Slot {
        std::uint32_t id = kNone;
        std::uint32_t tag = 0;
    };
    std::size_t mask() const { return slots_.size() - 1; }
    // Linear probing starts at the tag's low bits, which must be well spread: the combined hashes
    // of small ids are not, and their clusters made lookups slower with every stack added
    // (MurmurHash3's 64-bit finalizer).
    static std::uint32_t tag_of(std::uint64_t hash) {
        hash ^= hash >> 33;
        hash *= 0xff51afd7ed558ccdULL;
        hash ^= hash >> 33;
        hash *= 0xc4ceb9fe1a85ec53ULL;
        hash ^= hash >> 33;
        return static_cast<std::uint32_t>(hash);
    }
    void place(Slot slot);
    std::vector<Slot> slots_;
    std::size_t used_ = 0;
};

// The aggregated profile every exporter reads. Frames and threads are interned; stacks are kept
// once each with a count, their frames packed in large blocks, so memory grows with distinct
// stacks, not with samples. Past `max_stacks` distinct stacks or `max_stack_frames` frames in
// them, new ones are counted under a single "[other stacks]" frame so totals stay exact. The
// timeline keeps one small entry per sample up to `max_timeline` entries (then stops, saying so),
// for formats that show time order.
class Profile {
public:
    explicit Profile(std::size_t max_stacks = 1'000'000, std::size_t max_timeline = 20'000'000,
                     std::size_t max_stack_frames = 16'000'000);
    // Stacks point into blocks the profile owns: a move keeps them, a copy would not.
    Profile(const Profile&) = delete;
    Profile& operator=(const Profile&) = delete;
    Profile(Profile&&) = default;
    Profile& operator=(Profile&&) = default;

    FrameId intern(const Frame& frame);
    std::uint32_t intern_thread(const ThreadInfo& thread);
    // Adds `count` samples of this stack; with a time, also records them on the timeline.
    StackId add(std::uint32_t thread, std::span<const FrameId> root_first, std::uint64_t count = 1);
    StackId add_at(std::uint64_t time_us, std::uint32_t thread, std::span<const FrameId> root_first,
                   std::uint64_t count = 1);
    // `count` more samples of a stack already added (what add() returned), at this time.
    void add_again(std::uint64_t time_us, StackId stack, std::uint64_t count = 1);
    // Whether samples are also kept in time order (on by default). Off, memory stays bounded by the
    // distinct stacks however long the run; formats that show time order then fall back to counts.
    void keep_timeline(bool keep) {
        keep_timeline_ = keep;
        if (!keep) timeline_complete_ = false;
    }

    const Frame& frame(FrameId id) const { return frames_[id]; }
    // A deque: interning a frame never copies the others, nor holds twice their room while it grows.
    const std::deque<Frame>& frames() const { return frames_; }
    const std::vector<ThreadInfo>& threads() const { return threads_; }
    // Unique stacks, indexed by StackId, in order of first appearance.
    const std::vector<StackCount>& stacks() const { return stacks_; }
    const std::vector<TimedSample>& timeline() const { return timeline_; }
    bool timeline_complete() const { return timeline_complete_; }
    std::uint64_t total_count() const { return total_; }
    std::size_t distinct_stacks() const { return stacks_.size(); }
    // What the profile's own storage takes, in bytes (strings' heap storage excluded).
    std::size_t memory_bytes() const;

    RunInfo info;
    // By the file name frames carry; filled for the formats that show source.
    std::map<std::string, SourceFile, std::less<>> sources;

private:
    static std::size_t hash_stack(std::uint32_t thread, std::span<const FrameId> frames);
    StackId find_stack(std::size_t hash, std::uint32_t thread, std::span<const FrameId> frames) const;
    bool full() const { return stacks_.size() >= max_stacks_ || stored_frames_ >= max_stack_frames_; }
    std::span<const FrameId> store(std::span<const FrameId> frames);
    void record_time(std::uint64_t time_us, StackId stack);

    std::size_t max_stacks_;
    std::size_t max_timeline_;
    std::size_t max_stack_frames_;
    std::deque<Frame> frames_;
    IdIndex frame_ids_;  // by FrameHash
    std::vector<ThreadInfo> threads_;
    std::vector<StackCount> stacks_;
    IdIndex stack_ids_;  // by hash_stack()
    // Stacks' frames, in blocks that never move once allocated.
    std::vector<std::unique_ptr<FrameId[]>> blocks_;
    std::size_t block_size_ = 0;
    std::size_t block_used_ = 0;
    std::size_t stored_frames_ = 0;
    std::vector<TimedSample> timeline_;
    bool keep_timeline_ = true;
    bool timeline_complete_ = true;
    std::uint64_t total_ = 0;
};

struct FunctionTime {
    std::string function;
    std::string filename;
    std::uint64_t own = 0;    // samples with this function at the top
    std::uint64_t total = 0;  // samples with this function anywhere (counted once per sample)
};

// Functions (by name and file, lines merged) ranked by own samples; roots and markers left out.
std::vector<FunctionTime> top_functions(const Profile& profile, std::size_t limit);

}  // namespace pysample::exporters
