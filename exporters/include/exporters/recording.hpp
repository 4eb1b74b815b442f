// pysample's recording: every sample of a run, written while sampling, from which any output is
// made later (`pysample report`).
//
// A file is a header and a sequence of blocks, each compressed on its own and checked by a CRC:
// a run killed, a full disk or a power cut leaves a file readable up to its last whole block.
// A block is written at least once a second. Inside, records define what samples refer to
// before they do (processes, threads, frames, stacks), then each sampling tick's samples:
// a thread, a stack (often "the same as this thread's last"), a weight and the thread's state.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "exporters/profile.hpp"

namespace pysample::exporters {

namespace recording {
class Decoder;
}

// A thread sample's state.
enum SampleFlags : std::uint8_t {
    kSampleIdle = 1,       // not running or runnable
    kSampleGilHolder = 2,  // held the GIL (recorded with --gil only)
};

// What a recording says of its run. Strings are as the target gave them: escape before printing.
struct RecordingInfo {
    RunInfo run;
    std::string pysample_version;
    std::string host;
    double rate_asked = 0;
    std::string mode;           // "cpu" (weights are CPU time), "wall" (every thread, idle ones too), "gil"
    bool gil_read = false;      // each sample says whether its thread held the GIL
    bool subprocesses = false;  // stacks start with their process's root frame
    bool async_tasks = false;   // stacks rebuilt along asyncio's await chains
    bool finished = false;      // the run's own end was written (its duration, rate, ticks)
};

class RecordingWriter {
public:
    // Writes to `fd`, which it owns, from a thread of its own. The profile is the writer's source
    // of frames and stacks: each sample names one of its stacks, and the frames and stacks not
    // written yet are written first.
    RecordingWriter(int fd, const RecordingInfo& info);
    ~RecordingWriter();
    RecordingWriter(const RecordingWriter&) = delete;
    RecordingWriter& operator=(const RecordingWriter&) = delete;

    // A process sampled from now on (again after an exec), with its root frame's label when
    // stacks have one.
    void process(std::int64_t pid, const std::string& root_label, const std::string& command_line);
    // One thread's sample in the current tick: a stack of `source` (whose thread it names).
    void sample(const Profile& source, std::int64_t pid, StackId stack, std::uint32_t weight, std::uint8_t flags);
    // Ends a tick: its samples are written, and at least once a second a block.
    void tick(std::uint64_t time_us, bool failed);
    // The run's end, then the last block; waits until it is on disk.
    void finish(const RunInfo& run);

    // The first write error, with what was lost ("" while none).
    std::string error() const;
    std::uint64_t bytes_written() const;
    std::uint64_t samples() const { return samples_; }

    static constexpr std::chrono::milliseconds kBlockInterval{1000};
    static constexpr std::size_t kMaxBlockBytes = 4 << 20;

private:
    struct Shared;
    void define_thread(std::int64_t pid, std::uint32_t thread, const ThreadInfo& info);
    void define_stacks_up_to(const Profile& source, StackId stack);
    void end_block();
    void write_empty_ticks();

    std::unique_ptr<Shared> shared_;
    std::string block_;  // records of the block being filled
    std::string tick_;   // samples of the tick being taken
    std::uint32_t tick_samples_ = 0;
    std::uint64_t last_tick_us_ = 0;
    std::uint64_t empty_ticks_ = 0;  // not written yet
    std::uint64_t empty_failed_ = 0;
    std::uint64_t empty_from_us_ = 0;  // the tick before them
    std::chrono::steady_clock::time_point block_started_;
    std::size_t frames_written_ = 0;
    std::size_t stacks_written_ = 0;
    std::map<std::pair<std::int64_t, std::uint32_t>, std::uint32_t> threads_;  // (pid, profile thread) -> id
    std::vector<std::uint32_t> last_stack_;                                    // by recorded thread
    std::uint64_t samples_ = 0;
};

// One sample as read back.
struct RecordedSample {
    std::uint64_t time_us = 0;  // since the run started
    std::uint32_t thread = 0;   // index into RecordingReader::threads()
    std::uint32_t stack = 0;    // index into RecordingReader::stacks()
    std::uint32_t weight = 0;
    std::uint8_t flags = 0;
};

struct RecordedThread {
    std::int64_t pid = 0;
    ThreadInfo info;
};

struct RecordedProcess {
    std::int64_t pid = 0;
    std::string root_label;  // empty when stacks have no process root
    std::string command_line;
};

// Reads a recording block by block, handing on processes, ticks and samples in the order they
// were taken. A block that is cut short or damaged ends the reading: what came before it stands,
// and damage() says what was lost.
class RecordingReader {
public:
    struct Visitor {
        std::function<void(const RecordedProcess&)> process;
        std::function<void(std::uint64_t time_us, bool failed)> tick;
        std::function<void(const RecordedSample&)> sample;
    };

    // Throws std::runtime_error when the data is no recording (a wrong header).
    explicit RecordingReader(std::string data);

    // Reads every block; returns false when one was damaged (see damage()).
    bool read(const Visitor& visitor);

    const RecordingInfo& info() const { return info_; }
    const std::vector<Frame>& frames() const { return frames_; }
    const std::vector<std::vector<std::uint32_t>>& stacks() const { return stacks_; }
    const std::vector<RecordedThread>& threads() const { return threads_; }
    std::size_t blocks() const { return blocks_; }
    std::uint64_t ticks() const { return ticks_; }
    std::uint64_t failed_ticks() const { return failed_ticks_; }
    std::uint64_t samples_read() const { return samples_read_; }  // thread samples
    std::uint64_t last_time_us() const { return last_time_us_; }
    std::size_t bytes_read() const { return offset_; }
    std::size_t size() const { return data_.size(); }
    const std::string& damage() const { return damage_; }

private:
    bool next_block(std::string& records);
    void read_records(const std::string& records, const Visitor& visitor);
    void read_info(recording::Decoder& in);
    void read_tick(recording::Decoder& in, std::uint8_t tag, const Visitor& visitor);
    void read_empty_ticks(recording::Decoder& in, const Visitor& visitor);

    std::string data_;
    std::size_t offset_ = 0;
    RecordingInfo info_;
    std::vector<Frame> frames_;
    std::vector<std::vector<std::uint32_t>> stacks_;
    std::vector<RecordedThread> threads_;
    std::vector<std::uint32_t> last_stack_;
    std::size_t blocks_ = 0;
    std::uint64_t ticks_ = 0;
    std::uint64_t failed_ticks_ = 0;
    std::uint64_t samples_read_ = 0;
    std::uint64_t last_time_us_ = 0;
    std::string damage_;
};

// Whether these bytes begin like a recording.
bool looks_like_recording(std::string_view head);

}  // namespace pysample::exporters
