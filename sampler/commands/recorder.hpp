// The processes `record` samples (the target; with --subprocesses its Python descendants; after an
// exec the program it became) and the profile their samples make.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <list>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "commands/options.hpp"
#include "engine/async_stacks.hpp"
#include "engine/profile_stacks.hpp"
#include "engine/run_totals.hpp"
#include "engine/snapshot.hpp"
#include "exporters/profile.hpp"
#include "exporters/recording.hpp"

namespace pysample::sampler {

class Recorder {
public:
    // `target` may be null: a launcher that is not Python (yet), or with --subprocesses one whose
    // Python descendants are followed. The process `root_pid` is watched for execs either way.
    Recorder(std::unique_ptr<PythonProcess> target, pid_t root_pid, const RecordOptions& options);

    // Takes one sample into the profile; false once every sampled process is gone.
    bool sample(std::uint64_t time_us);

    exporters::Profile& profile() { return profile_; }
    // From now on every thread sample is also written to this recording (record -o FILE.pysample),
    // lines kept whatever --nolineno says.
    void record_to(std::unique_ptr<exporters::RecordingWriter> recording);
    exporters::RecordingWriter* recording() { return recording_.get(); }
    std::uint64_t ticks() const { return ticks_; }
    std::uint64_t failed_ticks() const { return failed_ticks_; }
    // What the snapshotters counted, of the processes sampled now and before.
    RunTotals totals();
    std::chrono::nanoseconds mean_pause() const;
    bool stops_each_thread() const { return options_.native != NativeMode::Off && !options_.blocking; }
    void serve_stops();
    attach::ThreadSuspender* suspender();
    // Exit status of the target if its suspender reaped it before letting go of it.
    std::optional<int> reaped_exit_status() const { return reaped_; }
    std::size_t processes_followed() const { return followed_; }
    std::size_t execs_followed() const { return execs_; }

private:
    // One process being sampled: the target, or with --subprocesses also one of its descendants.
    struct SampledProcess {
        PythonProcess* process = nullptr;
        std::unique_ptr<PythonProcess> owned;  // descendants are owned here; the target by run_record
        std::unique_ptr<Snapshotter> snapshotter;
        std::unique_ptr<AsyncStacks> async;  // with --async
        std::string command_line;            // as it was when the process was attached: its root frame's label
        std::string image;                   // attach::process_image(): changes when the process execs
        ProfileStacks::Process stacks;
        ProfileStacks::Process recorded;  // its stacks in the recording, which have no root frame
        std::string root_label;           // its root frame's, with --subprocesses
    };
    struct Image {
        std::string image;  // attach::process_image()
        std::chrono::steady_clock::time_point seen;
        bool attached;
    };

    const SampledProcess* root_process() const;
    void add_process(PythonProcess& process, std::unique_ptr<PythonProcess> owned);
    bool exec_ed(const SampledProcess& sampled) const;
    void follow_processes(std::uint64_t time_us, bool at_once);
    void attach_new_processes();
    bool root_alive() const;
    void retire(std::list<SampledProcess>::iterator& it);
    void count_sample(SampledProcess& sampled, const ThreadSnapshot& thread, std::uint64_t time_us);

    static constexpr std::uint64_t kProcessScanUs = 200'000;
    static constexpr auto kLoadingTime = std::chrono::seconds(2);
    static constexpr std::size_t kMaxRememberedProcesses = 4096;

    const RecordOptions& options_;
    pid_t root_pid_;
    exporters::Profile profile_;
    ProfileStacks stacks_;
    // A list: a process retired from the middle leaves the others where they are (a Snapshotter
    // refers to its process, which must outlive it).
    std::list<SampledProcess> processes_;
    std::map<pid_t, Image> images_;  // each process looked at, by the program it ran then
    std::uint64_t next_scan_us_ = 0;
    std::size_t followed_ = 0;
    std::size_t execs_ = 0;
    std::vector<ThreadSnapshot> threads_;
    std::uint64_t ticks_ = 0;
    std::uint64_t failed_ticks_ = 0;
    RunTotals retired_;
    std::chrono::nanoseconds last_mean_pause_{0};
    std::optional<int> reaped_;
    std::unique_ptr<exporters::RecordingWriter> recording_;
    exporters::Profile recorded_profile_;  // the recording's frames and stacks, without a timeline
    ProfileStacks recorded_stacks_;
};

}  // namespace pysample::sampler
