#include <spdlog/spdlog.h>
#include <unistd.h>

#include <cmath>
#include <csignal>
#include <cstdio>
#include <ctime>
#include <fstream>
#include <iostream>
#include <list>
#include <map>
#include <set>
#include <thread>
#include <unordered_map>

#include "attach/error.hpp"
#include "attach/launch.hpp"
#include "attach/processes.hpp"
#include "commands/launch_target.hpp"
#include "commands/options.hpp"
#include "commands/output_file.hpp"
#include "engine/frames.hpp"
#include "engine/snapshot.hpp"
#include "engine/timer.hpp"
#include "exporters/utf8.hpp"
#include "sampler/cli.hpp"

namespace pysample::sampler {
namespace {

using Clock = std::chrono::steady_clock;

std::string timestamp(const char* format) {
    std::time_t now = std::time(nullptr);
    std::tm local{};
    ::localtime_r(&now, &local);
    char buf[64];
    std::strftime(buf, sizeof(buf), format, &local);
    return buf;
}

std::string default_output_path(pid_t pid, exporters::Format format) {
    return "pysample-" + std::to_string(pid) + "-" + timestamp("%Y%m%d-%H%M%S") +
           std::string(exporters::default_extension(format));
}

// One process being sampled: the target, or with --subprocesses also one of its descendants.
struct SampledProcess {
    PythonProcess* process = nullptr;
    std::unique_ptr<PythonProcess> owned;  // descendants are owned here; the target by run_record
    std::unique_ptr<Snapshotter> snapshotter;
    std::string command_line;  // as it was when the process was attached: its root frame's label
    std::string image;         // attach::process_image(): changes when the process execs
    exporters::FrameId root = 0;
    // Each thread's last stack, to count a repeat of it without building it again.
    struct LastStack {
        std::vector<std::uint64_t> key;
        std::string name;
        exporters::StackId stack = 0;
    };
    std::unordered_map<std::uint64_t, LastStack> last_stacks;
};

class Recorder {
public:
    // `target` may be null: a launcher that is not Python (yet), or with --subprocesses one whose
    // Python descendants are followed. The process `root_pid` is watched for execs either way.
    Recorder(std::unique_ptr<PythonProcess> target, pid_t root_pid, const RecordOptions& options)
        : options_(options), root_pid_(root_pid) {
        profile_.keep_timeline(std::any_of(options.outputs.begin(), options.outputs.end(), [](const auto& output) {
            return exporters::shows_time_order(output.format);
        }));
        if (target != nullptr) {
            auto& ref = *target;
            add_process(ref, std::move(target));
        }
    }

    // Takes one sample into the profile; false once every sampled process is gone.
    bool sample(std::uint64_t time_us) {
        ++ticks_;
        follow_processes(time_us, false);
        bool failed = false;
        bool look_again = false;
        for (auto it = processes_.begin(); it != processes_.end();) {
            auto outcome = it->snapshotter->take(threads_, options_.idle);
            if (outcome == Snapshotter::Outcome::ProcessGone) {
                retire(it);
                continue;
            }
            // A process that exec'ed fails to read: its image is checked at once.
            if (outcome == Snapshotter::Outcome::Failed && exec_ed(*it)) {
                look_again = true;
                ++it;
                continue;
            }
            failed = failed || outcome == Snapshotter::Outcome::Failed;
            for (const auto& thread : threads_) {
                if (thread.frames.empty() || thread.joined) continue;
                // --gil keeps the holder whatever it does; CPU time counts what each thread ran.
                std::uint64_t samples = options_.gil ? (thread.holds_gil ? 1 : 0) : thread.weight;
                if (samples > 0) add_to_profile(*it, thread, time_us, samples);
            }
            ++it;
        }
        if (look_again) follow_processes(time_us, true);
        if (processes_.empty() && !root_alive()) {
            --ticks_;
            return false;
        }
        if (failed) ++failed_ticks_;
        return true;
    }

    exporters::Profile& profile() { return profile_; }
    std::uint64_t ticks() const { return ticks_; }
    std::uint64_t failed_ticks() const { return failed_ticks_; }
    const SnapshotStats& stats() {
        totals_ = retired_stats_;
        for (const auto& sampled : processes_) add_stats(totals_, sampled.snapshotter->stats());
        return totals_;
    }
    const NativeStats* native_stats() {
        if (options_.native == NativeMode::Off) return nullptr;
        native_totals_ = retired_native_;
        for (const auto& sampled : processes_) add_native_stats(native_totals_, *sampled.snapshotter->native_stats());
        return &native_totals_;
    }
    std::chrono::nanoseconds mean_pause() const {
        const auto* root = root_process();
        return root == nullptr ? last_mean_pause_ : root->snapshotter->mean_pause();
    }
    bool stops_each_thread() const { return options_.native != NativeMode::Off && !options_.blocking; }
    // Threads that a pause could not stop, across every process sampled.
    attach::StopFailures stop_failures() {
        attach::StopFailures total = retired_stop_failures_;
        for (const auto& sampled : processes_) {
            if (auto* suspender = sampled.snapshotter->suspender())
                add_stop_failures(total, suspender->stop_failures());
        }
        return total;
    }
    void serve_stops() {
        for (auto& sampled : processes_) sampled.snapshotter->serve_stops();
    }
    attach::ThreadSuspender* suspender() {
        const auto* root = root_process();
        return root == nullptr ? nullptr : root->snapshotter->suspender();
    }
    // Exit status of the target if its suspender reaped it before letting go of it.
    std::optional<int> reaped_exit_status() const { return reaped_; }
    std::size_t processes_followed() const { return followed_; }
    std::size_t execs_followed() const { return execs_; }

private:
    static constexpr std::uint64_t kProcessScanUs = 200'000;

    const SampledProcess* root_process() const {
        for (const auto& sampled : processes_) {
            if (sampled.process->pid() == root_pid_) return &sampled;
        }
        return nullptr;
    }

    void add_process(PythonProcess& process, std::unique_ptr<PythonProcess> owned) {
        SampledProcess sampled;
        sampled.process = &process;
        sampled.owned = std::move(owned);
        sampled.snapshotter = std::make_unique<Snapshotter>(process, options_.blocking, options_.native);
        sampled.snapshotter->read_gil(options_.gil);
        sampled.command_line = attach::read_cmdline(process.pid());
        sampled.image = attach::process_image(process.pid());
        if (options_.subprocesses) {
            std::string label = "process " + std::to_string(process.pid()) + " " + sampled.command_line;
            if (label.size() > 200) label = label.substr(0, 197) + "...";
            sampled.root = profile_.intern(exporters::Frame::made_by_pysample(label));
        }
        images_[process.pid()] = {sampled.image, std::chrono::steady_clock::now(), true};
        ++followed_;
        processes_.push_back(std::move(sampled));
    }

    // Whether the process now runs another program than the one attached (a title changed with
    // setproctitle, as gunicorn and celery do, is no exec).
    bool exec_ed(const SampledProcess& sampled) const {
        std::string image = attach::process_image(sampled.process->pid());
        return !image.empty() && image != sampled.image;
    }

    // A few times a second, and at once when a read fails: a process that exec'ed is attached
    // afresh (or, when it does not run Python now, watched until it does or exits), and with
    // --subprocesses new Python descendants are attached. A process found not to be Python is
    // looked at again only once it has exec'ed.
    void follow_processes(std::uint64_t time_us, bool at_once) {
        if (!at_once && time_us < next_scan_us_) return;
        next_scan_us_ = time_us + kProcessScanUs;
        for (auto it = processes_.begin(); it != processes_.end();) {
            if (!exec_ed(*it)) {
                ++it;
                continue;
            }
            pid_t pid = it->process->pid();
            ++execs_;
            spdlog::info("process {} exec'ed: {}", pid,
                         exporters::escape_control_characters(attach::read_cmdline(pid)));
            images_.erase(pid);
            retire(it);
        }
        std::vector<pid_t> candidates{root_pid_};
        if (options_.subprocesses) {
            auto descendants = attach::descendants(root_pid_);
            candidates.insert(candidates.end(), descendants.begin(), descendants.end());
        }
        auto now = std::chrono::steady_clock::now();
        for (pid_t pid : candidates) {
            auto image = attach::process_image(pid);
            auto known = images_.find(pid);
            // A program that has just been exec'ed may still be loading libpython.
            if (image.empty() || (known != images_.end() && known->second.image == image &&
                                  (known->second.attached || now - known->second.seen > kLoadingTime))) {
                continue;
            }
            try {
                auto process = std::make_unique<PythonProcess>(pid, options_.python_version);
                auto& ref = *process;
                add_process(ref, std::move(process));
                spdlog::info("following process {}: {}", pid,
                             exporters::escape_control_characters(processes_.back().command_line));
            } catch (const PythonError& e) {
                // Not Python yet: it may exec an interpreter later.
                if (e.kind() == PythonErrorKind::NotPython && (known == images_.end() || known->second.image != image))
                    images_[pid] = {image, now, false};
            } catch (const attach::Error&) {
                // Already gone, or not ours to read: looked at again if it execs.
            }
        }
        if (images_.size() > kMaxRememberedProcesses) {
            std::erase_if(images_, [](const auto& entry) { return attach::process_image(entry.first).empty(); });
        }
    }

    bool root_alive() const {
        char state = attach::read_thread_state(root_pid_, root_pid_);
        return state != '?' && state != 'Z' && state != 'X';
    }

    void retire(std::list<SampledProcess>::iterator& it) {
        add_stats(retired_stats_, it->snapshotter->stats());
        if (const auto* native = it->snapshotter->native_stats()) add_native_stats(retired_native_, *native);
        if (auto* suspender = it->snapshotter->suspender())
            add_stop_failures(retired_stop_failures_, suspender->stop_failures());
        if (it->process->pid() == root_pid_) {
            last_mean_pause_ = it->snapshotter->mean_pause();
            if (auto* suspender = it->snapshotter->suspender()) reaped_ = suspender->reaped_exit_status();
        }
        it = processes_.erase(it);
    }

    static void add_stats(SnapshotStats& into, const SnapshotStats& from) {
        into.thread_stacks += from.thread_stacks;
        into.rejected += from.rejected;
        into.cut += from.cut;
        into.unknown_thread_stacks += from.unknown_thread_stacks;
        into.deepest = std::max(into.deepest, from.deepest);
        for (const auto& [reason, count] : from.reasons) into.reasons[reason] += count;
        into.unreadable_lists += from.unreadable_lists;
        for (const auto& [reason, count] : from.list_reasons) into.list_reasons[reason] += count;
    }

    static void add_stop_failures(attach::StopFailures& into, const attach::StopFailures& from) {
        into.uninterruptible += from.uninterruptible;
        into.waiting_for_cpu += from.waiting_for_cpu;
        into.other_state += from.other_state;
        into.traced_elsewhere += from.traced_elsewhere;
        if (from.tracer != 0) into.tracer = from.tracer;
    }

    static void add_native_stats(NativeStats& into, const NativeStats& from) {
        into.merged += from.merged;
        into.not_merged += from.not_merged;
        into.copied_bytes += from.copied_bytes;
        for (const auto& [reason, count] : from.reasons) into.reasons[reason] += count;
    }

    // What identifies a Python frame in the profile: its code object (by the cache's id, which a
    // reused address does not share) and the line recorded. Native frames have no such key.
    int recorded_line(const PyFrame& frame) const { return options_.line_numbers && frame.line > 0 ? frame.line : 0; }

    std::uint64_t frame_key(const PyFrame& frame) const {
        return (std::uint64_t{frame.code->id} << 32) | static_cast<std::uint32_t>(recorded_line(frame));
    }

    // The stack key of a thread's frames; false when a frame has no key (a native frame).
    bool stack_key(const ThreadSnapshot& thread, std::vector<std::uint64_t>& key) const {
        key.clear();
        for (const auto& frame : thread.frames) {
            if (frame.code == nullptr) return false;
            key.push_back(frame_key(frame));
        }
        return true;
    }

    exporters::FrameId python_frame_id(const PyFrame& frame) {
        auto [it, inserted] = python_frames_.try_emplace(frame_key(frame), 0);
        if (inserted) it->second = profile_.intern(profile_frame(frame, options_.line_numbers));
        return it->second;
    }

    // A thread whose stack is the same as in its previous sample (the common case) is counted
    // without building and looking up the stack again.
    void add_to_profile(SampledProcess& sampled, const ThreadSnapshot& thread, std::uint64_t time_us,
                        std::uint64_t samples) {
        bool keyed = stack_key(thread, key_);
        if (keyed) {
            auto last = sampled.last_stacks.find(thread.id);
            if (last != sampled.last_stacks.end() && last->second.key == key_ && last->second.name == thread.name) {
                profile_.add_again(time_us, last->second.stack, samples);
                return;
            }
        }
        stack_.clear();
        if (options_.subprocesses) {
            stack_.push_back(sampled.root);
            // Under its process, so the thread's own root frame is added here rather than by the writers.
            if (options_.threads)
                stack_.push_back(profile_.intern(
                    exporters::Frame::made_by_pysample(exporters::thread_label({thread.id, thread.name}))));
        }
        for (auto it = thread.frames.rbegin(); it != thread.frames.rend(); ++it) {
            stack_.push_back(it->code != nullptr ? python_frame_id(*it)
                                                 : profile_.intern(profile_frame(*it, options_.line_numbers)));
        }
        auto stack = profile_.add_at(time_us, profile_.intern_thread({thread.id, thread.name}), stack_, samples);
        if (!keyed) return;
        if (sampled.last_stacks.size() > kMaxRememberedThreads) sampled.last_stacks.clear();
        auto& last = sampled.last_stacks[thread.id];
        last.key.swap(key_);
        last.name = thread.name;
        last.stack = stack;
    }

    static constexpr std::size_t kMaxRememberedThreads = 4096;

    const RecordOptions& options_;
    pid_t root_pid_;
    // A list: a process retired from the middle leaves the others where they are (a Snapshotter
    // refers to its process, which must outlive it).
    std::list<SampledProcess> processes_;
    struct Image {
        std::string image;  // attach::process_image()
        std::chrono::steady_clock::time_point seen;
        bool attached;
    };
    std::map<pid_t, Image> images_;  // each process looked at, by the program it ran then
    static constexpr auto kLoadingTime = std::chrono::seconds(2);
    std::uint64_t next_scan_us_ = 0;
    std::size_t followed_ = 0;
    std::size_t execs_ = 0;
    static constexpr std::size_t kMaxRememberedProcesses = 4096;
    exporters::Profile profile_;
    std::vector<ThreadSnapshot> threads_;
    std::vector<exporters::FrameId> stack_;
    std::vector<std::uint64_t> key_;
    std::unordered_map<std::uint64_t, exporters::FrameId> python_frames_;
    std::uint64_t ticks_ = 0;
    std::uint64_t failed_ticks_ = 0;
    SnapshotStats retired_stats_;
    SnapshotStats totals_;
    NativeStats retired_native_;
    NativeStats native_totals_;
    std::chrono::nanoseconds last_mean_pause_{0};
    attach::StopFailures retired_stop_failures_;
    std::optional<int> reaped_;
};

// On the system-wide monotonic clock, so that a caller can time pysample's start-up from outside.
void log_first_sample() {
    timespec now{};
    ::clock_gettime(CLOCK_MONOTONIC, &now);
    spdlog::debug("first sample at monotonic {}.{:06d} s", now.tv_sec, now.tv_nsec / 1000);
}

void print_progress(std::uint64_t ticks, double elapsed, std::uint64_t errors) {
    std::fprintf(stderr, "\rpysample: %llu samples, %.1f Hz, %llu errors   ", static_cast<unsigned long long>(ticks),
                 elapsed > 0 ? static_cast<double>(ticks) / elapsed : 0.0, static_cast<unsigned long long>(errors));
    std::fflush(stderr);
}

void print_native_summary(const NativeStats& native) {
    std::uint64_t stacks = native.merged + native.not_merged;
    if (stacks == 0) return;
    std::fprintf(stderr, "pysample: native stacks: %llu of %llu merged with their Python frames (%.2f%%)",
                 static_cast<unsigned long long>(native.merged), static_cast<unsigned long long>(stacks),
                 100.0 * static_cast<double>(native.merged) / static_cast<double>(stacks));
    if (native.not_merged > 0) {
        std::string reasons;
        for (const auto& [reason, count] : native.reasons) {
            reasons += (reasons.empty() ? "" : ", ") + std::to_string(count) + " " + reason;
        }
        std::fprintf(stderr, "; %llu kept as Python-only (%s)", static_cast<unsigned long long>(native.not_merged),
                     reasons.c_str());
    }
    std::fprintf(stderr, "; %.1f KiB of stack copied per stack\n",
                 static_cast<double>(native.copied_bytes) / 1024.0 / static_cast<double>(stacks));
}

// Why threads were read without being stopped, when some were.
void print_stop_failures(const attach::StopFailures& failures) {
    if (auto timeouts = failures.timeouts(); timeouts > 0) {
        std::vector<std::string> causes;
        auto add = [&](std::uint64_t count, const char* cause) {
            if (count > 0) causes.push_back(std::to_string(count) + " " + cause);
        };
        add(failures.uninterruptible, "in an uninterruptible wait (vfork(), disk or NFS I/O)");
        add(failures.waiting_for_cpu, "runnable but waiting for a CPU (the machine or its CPU quota is saturated)");
        add(failures.other_state, "in another state");
        std::string joined;
        for (const auto& cause : causes) joined += (joined.empty() ? "" : ", ") + cause;
        std::fprintf(stderr, "pysample: %llu time%s a thread did not stop within %lld ms and was read as it was: %s\n",
                     static_cast<unsigned long long>(timeouts), timeouts == 1 ? "" : "s",
                     static_cast<long long>(attach::ThreadSuspender::kStopWait.count()), joined.c_str());
    }
    if (failures.traced_elsewhere > 0) {
        std::fprintf(stderr,
                     "pysample: %llu time%s a thread could not be stopped because %s traces it (a debugger, "
                     "strace or another pysample; a thread has one tracer only); it was read without stopping it\n",
                     static_cast<unsigned long long>(failures.traced_elsewhere),
                     failures.traced_elsewhere == 1 ? "" : "s",
                     exporters::escape_control_characters(attach::process_label(failures.tracer)).c_str());
    }
}

// How samples became the profile's counts, which differ from the number of samples taken.
const char* describe_counting(const RecordOptions& options) {
    if (options.gil) return "the thread holding the GIL counted in each sample";
    if (options.idle) return "wall-clock time: every thread counted in every sample";
    return "CPU time: each thread counted for the CPU it used";
}

std::string describe_reasons(const std::map<WalkResult, std::uint64_t>& reasons) {
    std::string text;
    for (const auto& [reason, count] : reasons) {
        text += (text.empty() ? "" : ", ") + std::to_string(count) + " " + std::string(describe(reason));
    }
    return text;
}

void print_summary(Recorder& recorder, const RecordOptions& options, const std::vector<std::string>& written) {
    const auto& info = recorder.profile().info;
    const auto& stats = recorder.stats();
    double percent =
        info.samples == 0 ? 0.0 : 100.0 * static_cast<double>(info.errors) / static_cast<double>(info.samples);
    std::fprintf(stderr, "pysample: %llu samples in %.2f s (%.1f Hz achieved, %s asked), %llu errors (%.2f%%)\n",
                 static_cast<unsigned long long>(info.samples), info.duration_s,
                 info.duration_s > 0 ? static_cast<double>(info.samples) / info.duration_s : 0.0,
                 describe_rate(options.rate).c_str(), static_cast<unsigned long long>(info.errors), percent);
    std::fprintf(stderr, "pysample: the profile holds %llu thread samples (%s)\n",
                 static_cast<unsigned long long>(recorder.profile().total_count()), describe_counting(options));
    if (stats.unreadable_lists > 0) {
        std::fprintf(stderr, "pysample: %llu sample%s failed because the list of threads could not be read (%s)\n",
                     static_cast<unsigned long long>(stats.unreadable_lists), stats.unreadable_lists == 1 ? "" : "s",
                     describe_reasons(stats.list_reasons).c_str());
    }
    if (stats.rejected > 0) {
        std::fprintf(stderr, "pysample: %llu of %llu thread stacks rejected (%s)\n",
                     static_cast<unsigned long long>(stats.rejected),
                     static_cast<unsigned long long>(stats.thread_stacks), describe_reasons(stats.reasons).c_str());
    }
    if (stats.cut > 0) {
        std::fprintf(stderr,
                     "pysample: %llu stack%s deeper than %zu frames (the deepest %llu) kept with %s middle left out, "
                     "marked \"[N frames omitted]\"\n",
                     static_cast<unsigned long long>(stats.cut), stats.cut == 1 ? "" : "s",
                     StackWalker::kKeepInner + StackWalker::kKeepOuter, static_cast<unsigned long long>(stats.deepest),
                     stats.cut == 1 ? "its" : "their");
    }
    if (stats.unknown_thread_stacks > 0) {
        std::fprintf(stderr,
                     "pysample: %llu stack%s of sub-interpreters shown under the thread that created the interpreter, "
                     "the thread running it unknown (Python before 3.10 does not record it)\n",
                     static_cast<unsigned long long>(stats.unknown_thread_stacks),
                     stats.unknown_thread_stacks == 1 ? "" : "s");
    }
    if (const auto* native = recorder.native_stats()) print_native_summary(*native);
    if (recorder.stops_each_thread()) {
        std::fprintf(stderr, "pysample: each thread was stopped for %.1f us per stack read on average\n",
                     static_cast<double>(recorder.mean_pause().count()) / 1000.0);
    } else if (options.blocking) {
        std::fprintf(stderr, "pysample: threads were stopped for %.1f us per sample on average\n",
                     static_cast<double>(recorder.mean_pause().count()) / 1000.0);
    }
    print_stop_failures(recorder.stop_failures());
    if (auto execs = recorder.execs_followed(); execs > 0) {
        std::fprintf(stderr, "pysample: followed %zu exec%s into another program\n", execs, execs == 1 ? "" : "s");
    }
    if (options.subprocesses) {
        std::fprintf(stderr, "pysample: sampled %zu Python process%s\n", recorder.processes_followed(),
                     recorder.processes_followed() == 1 ? "" : "es");
    }
    for (const auto& path : written) {
        std::fprintf(stderr, "pysample: wrote %s\n", exporters::escape_control_characters(path).c_str());
    }

    auto top = exporters::top_functions(recorder.profile(), 10);
    if (top.empty()) return;
    auto total = static_cast<double>(std::max<std::uint64_t>(recorder.profile().total_count(), 1));
    std::fprintf(stderr, "\n  %%Own  %%Total  OwnSamples  Function (file)\n");
    for (const auto& fn : top) {
        std::fprintf(stderr, "%5.1f%%  %5.1f%%  %10llu  %s (%s)\n", 100.0 * static_cast<double>(fn.own) / total,
                     100.0 * static_cast<double>(fn.total) / total, static_cast<unsigned long long>(fn.own),
                     exporters::escape_control_characters(fn.function).c_str(),
                     exporters::escape_control_characters(fn.filename).c_str());
    }
}

// What write_outputs did: "path (format)" for each file written, a message for each that was not.
struct WrittenOutputs {
    std::vector<std::string> written;
    std::vector<std::string> failed;
};

// Each file is written whole or not at all (see OutputFile); one that fails does not stop the others.
WrittenOutputs write_outputs(const exporters::Profile& profile, const RecordOptions& options) {
    exporters::WriteOptions write;
    write.thread_roots = options.threads && !options.subprocesses;  // else added under each process
    write.line_numbers = options.line_numbers;
    write.reverse = options.reverse;
    write.sort = options.sort;
    write.top = options.top;
    write.version = PYSAMPLE_VERSION;
    WrittenOutputs outputs;
    for (const auto& output : options.outputs) {
        std::string path = output.path.empty() ? default_output_path(profile.info.pid, output.format) : output.path;
        try {
            OutputFile file(path);
            exporters::write_profile(output.format, profile, write, file.stream());
            file.commit();
            std::string name = (path == kStandardOutput ? std::string("standard output") : path) + " (" +
                               std::string(exporters::format_name(output.format)) + ")";
            if (file.reader_closed()) name += ", until its reader closed the pipe";
            outputs.written.push_back(name);
        } catch (const attach::Error& e) {
            outputs.failed.push_back(e.what());
        } catch (const std::exception& e) {
            outputs.failed.push_back("cannot write the profile to '" + path + "': " + e.what());
        }
    }
    return outputs;
}

}  // namespace

int run_record(const RecordOptions& options) {
    // Before attaching: a profile that cannot be saved is not worth taking.
    for (const auto& output : options.outputs) check_output_path(output.path);
    StopSignals signals;
    std::unique_ptr<attach::ChildProcess> child;
    std::unique_ptr<PythonProcess> process;
    pid_t root = options.pid;
    if (!options.command.empty()) {
        child = std::make_unique<attach::ChildProcess>(options.command);
        signals.forward_to(child->pid());
        root = child->pid();
        // With --subprocesses the command may be a launcher that is not Python itself.
        if (!options.subprocesses) {
            process = wait_for_python(*child, options);
            if (!process) return no_python_ran(options.command, child->wait(), options.quiet);
        }
    } else {
        try {
            process = std::make_unique<PythonProcess>(options.pid, options.python_version);
        } catch (const PythonError& e) {
            if (!options.subprocesses || e.kind() != PythonErrorKind::NotPython) throw;
        }
    }

    bool python_target = process != nullptr;
    std::string python_version = python_target ? process->version().to_string() : "";
    auto recorder = std::make_unique<Recorder>(std::move(process), root, options);
    auto& info = recorder->profile().info;
    info.pid = root;
    info.command_line = attach::read_cmdline(root);
    info.python_version = python_version;
    info.rate_hz = options.rate;
    info.counting = options.gil ? "GIL holder" : options.idle ? "wall-clock time" : "CPU time";
    info.start_time = timestamp("%Y-%m-%dT%H:%M:%S%z");
    if (!options.quiet) {
        std::string what = python_target ? "pid " + std::to_string(root) + " (Python " + info.python_version + ")"
                                         : "the Python processes under pid " + std::to_string(root);
        std::fprintf(stderr, "pysample: sampling %s%s at %s%s%s\n", what.c_str(),
                     options.subprocesses && python_target ? " and its Python subprocesses" : "",
                     describe_rate(options.rate).c_str(), options.blocking ? ", blocking" : "",
                     options.duration > 0 ? "" : "; Ctrl-C to stop");
    }

    bool show_progress = !options.quiet && ::isatty(STDERR_FILENO);
    DeadlineTimer timer(options.rate);
    auto start = Clock::now();
    auto last_progress = start;
    bool target_gone = false;
    while (!stop_requested()) {
        if (child) {
            if (auto* suspender = recorder->suspender(); suspender && suspender->reaped_exit_status()) {
                child->set_reaped(*suspender->reaped_exit_status());
            }
            if (child->poll()) break;
        }
        auto since_start = std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - start).count();
        if (!recorder->sample(static_cast<std::uint64_t>(since_start))) {
            target_gone = true;
            break;
        }
        if (recorder->ticks() == 1) log_first_sample();
        auto now = Clock::now();
        double elapsed = std::chrono::duration<double>(now - start).count();
        if (options.duration > 0 && elapsed >= options.duration) break;
        if (show_progress && now - last_progress >= std::chrono::seconds(1)) {
            print_progress(recorder->ticks(), elapsed, recorder->failed_ticks());
            last_progress = now;
        }
        timer.wait_next([&] { recorder->serve_stops(); });
    }
    if (show_progress) std::fputs("\r\033[K", stderr);
    info.duration_s = std::chrono::duration<double>(Clock::now() - start).count();
    info.samples = recorder->ticks();
    info.errors = recorder->failed_ticks();
    // Each sample stands for the time between samples actually achieved, not the one asked for:
    // a loaded machine, or --rate max, gives another.
    if (info.samples > 0 && info.duration_s > 0) info.rate_hz = static_cast<double>(info.samples) / info.duration_s;

    std::optional<int> reaped = recorder->reaped_exit_status();
    if (auto* suspender = recorder->suspender()) reaped = suspender->reaped_exit_status();
    if (target_gone && !options.quiet && !child) {
        std::fprintf(stderr, "pysample: process %d exited; writing what was recorded\n", root);
    }
    auto outputs = write_outputs(recorder->profile(), options);
    for (const auto& failure : outputs.failed) {
        std::fprintf(stderr, "pysample: %s\n", exporters::escape_control_characters(failure).c_str());
    }
    if (!options.quiet) print_summary(*recorder, options, outputs.written);
    int written_status = outputs.failed.empty() ? kExitOk : kExitOutputUnwritable;
    if (written_status == kExitOk && recorder->processes_followed() == 0) {
        // --subprocesses under a command or process that never ran Python: a script must be able
        // to tell this empty profile from a real one.
        if (!options.quiet) {
            std::fprintf(stderr, "pysample: no Python process ran under pid %d; the profile is empty\n", root);
        }
        written_status = kExitNotPython;
    }
    // Detach (when blocking) before waiting for a launched child, whose stops would otherwise wait for us.
    recorder.reset();

    if (child) {
        if (reaped) child->set_reaped(*reaped);
        // Ctrl-C in a terminal reaches the child too; pass the signal on only if it is still running after a moment.
        for (int waited = 0; stop_requested() && !child->poll() && waited < 100; ++waited) {
            std::this_thread::sleep_for(std::chrono::milliseconds(10));
        }
        if (stop_requested() && !child->poll()) child->send_signal(stop_signal());
        if (!child->poll() && !options.quiet) {
            std::fprintf(stderr, "pysample: profile written; waiting for '%s' (pid %d) to exit, Ctrl-C to stop it\n",
                         exporters::escape_control_characters(options.command[0]).c_str(), child->pid());
        }
        int child_status = attach::ChildProcess::exit_code(child->wait());
        return written_status != kExitOk ? written_status : child_status;
    }
    return written_status;
}

}  // namespace pysample::sampler
