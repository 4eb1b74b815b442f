#include <spdlog/spdlog.h>
#include <unistd.h>

#include <cmath>
#include <csignal>
#include <cstdio>
#include <ctime>
#include <fstream>
#include <iostream>
#include <thread>

#include "attach/error.hpp"
#include "attach/launch.hpp"
#include "options.hpp"
#include "sampler/cli.hpp"
#include "snapshot.hpp"
#include "timer.hpp"

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

// Waits until a launched command has become a Python process with its runtime mapped. Returns
// nullptr when the child exits first or a stop signal arrives.
std::unique_ptr<PythonProcess> wait_for_python(attach::ChildProcess& child, const RecordOptions& options) {
    auto started = Clock::now();
    bool warned = false;
    for (;;) {
        if (child.poll() || stop_requested()) return nullptr;
        try {
            return std::make_unique<PythonProcess>(child.pid(), options.python_version);
        } catch (const attach::Error& e) {
            if (e.kind() != attach::ErrorKind::NotPython && e.kind() != attach::ErrorKind::NoSuchProcess) throw;
            if (!warned && Clock::now() - started > std::chrono::seconds(5)) {
                spdlog::warn("still waiting for '{}' to start a Python interpreter: {}", options.command[0], e.what());
                warned = true;
            }
        }
        std::this_thread::sleep_for(std::chrono::microseconds(500));
    }
}

class Recorder {
public:
    Recorder(PythonProcess& process, const RecordOptions& options)
        : process_(process), options_(options), snapshotter_(process, options.blocking, options.native) {}

    // Takes one sample into the profile; false once the target is gone.
    bool sample(std::uint64_t time_us) {
        ++ticks_;
        auto outcome = snapshotter_.take(threads_, options_.idle);
        if (outcome == Snapshotter::Outcome::ProcessGone) {
            --ticks_;
            return false;
        }
        if (outcome == Snapshotter::Outcome::Failed) ++failed_ticks_;
        for (const auto& thread : threads_) {
            if ((thread.idle && !options_.idle) || thread.frames.empty()) continue;
            add_to_profile(thread, time_us);
        }
        return true;
    }

    exporters::Profile& profile() { return profile_; }
    std::uint64_t ticks() const { return ticks_; }
    std::uint64_t failed_ticks() const { return failed_ticks_; }
    const SnapshotStats& stats() const { return snapshotter_.stats(); }
    const NativeStats* native_stats() const { return snapshotter_.native_stats(); }
    std::chrono::nanoseconds mean_pause() const { return snapshotter_.mean_pause(); }
    bool stops_each_thread() const { return snapshotter_.stops_each_thread(); }
    attach::ThreadSuspender* suspender() { return snapshotter_.suspender(); }

private:
    void add_to_profile(const ThreadSnapshot& thread, std::uint64_t time_us) {
        stack_.clear();
        for (auto it = thread.frames.rbegin(); it != thread.frames.rend(); ++it) {
            if (it->native != nullptr) {
                stack_.push_back(profile_.intern(profile_frame(*it->native, options_.line_numbers)));
                continue;
            }
            int line = options_.line_numbers && it->line > 0 ? it->line : 0;
            stack_.push_back(profile_.intern({it->code->function, it->code->filename, line, it->code->firstlineno}));
        }
        profile_.add_at(time_us, profile_.intern_thread({thread.id, thread.name}), stack_);
    }

    PythonProcess& process_;
    const RecordOptions& options_;
    Snapshotter snapshotter_;
    exporters::Profile profile_;
    std::vector<ThreadSnapshot> threads_;
    std::vector<exporters::FrameId> stack_;
    std::uint64_t ticks_ = 0;
    std::uint64_t failed_ticks_ = 0;
};

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

void print_summary(Recorder& recorder, const RecordOptions& options, const std::vector<std::string>& written) {
    const auto& info = recorder.profile().info;
    const auto& stats = recorder.stats();
    double percent =
        info.samples == 0 ? 0.0 : 100.0 * static_cast<double>(info.errors) / static_cast<double>(info.samples);
    std::fprintf(stderr, "pysample: %llu samples in %.2f s (%.1f Hz achieved, %.0f Hz asked), %llu errors (%.2f%%)\n",
                 static_cast<unsigned long long>(info.samples), info.duration_s,
                 info.duration_s > 0 ? static_cast<double>(info.samples) / info.duration_s : 0.0, options.rate,
                 static_cast<unsigned long long>(info.errors), percent);
    if (stats.rejected > 0) {
        std::string reasons;
        for (const auto& [reason, count] : stats.reasons) {
            reasons += (reasons.empty() ? "" : ", ") + std::to_string(count) + " " + std::string(describe(reason));
        }
        std::fprintf(stderr, "pysample: %llu of %llu thread stacks rejected (%s)\n",
                     static_cast<unsigned long long>(stats.rejected),
                     static_cast<unsigned long long>(stats.thread_stacks), reasons.c_str());
    }
    if (const auto* native = recorder.native_stats()) print_native_summary(*native);
    if (recorder.stops_each_thread()) {
        std::fprintf(stderr, "pysample: each thread was stopped for %.1f us per stack read on average\n",
                     static_cast<double>(recorder.mean_pause().count()) / 1000.0);
    } else if (options.blocking) {
        std::fprintf(stderr, "pysample: threads were stopped for %.1f us per sample on average\n",
                     static_cast<double>(recorder.mean_pause().count()) / 1000.0);
    }
    for (const auto& path : written) std::fprintf(stderr, "pysample: wrote %s\n", path.c_str());

    auto top = exporters::top_functions(recorder.profile(), 10);
    if (top.empty()) return;
    auto total = static_cast<double>(std::max<std::uint64_t>(recorder.profile().total_count(), 1));
    std::fprintf(stderr, "\n  %%Own  %%Total  OwnSamples  Function (file)\n");
    for (const auto& fn : top) {
        std::fprintf(stderr, "%5.1f%%  %5.1f%%  %10llu  %s (%s)\n", 100.0 * static_cast<double>(fn.own) / total,
                     100.0 * static_cast<double>(fn.total) / total, static_cast<unsigned long long>(fn.own),
                     fn.function.c_str(), fn.filename.c_str());
    }
}

std::vector<std::string> write_outputs(const exporters::Profile& profile, const RecordOptions& options) {
    exporters::WriteOptions write;
    write.thread_roots = options.threads;
    write.line_numbers = options.line_numbers;
    write.reverse = options.reverse;
    write.sort = options.sort;
    write.top = options.top;
    write.version = PYSAMPLE_VERSION;
    std::vector<std::string> written;
    for (const auto& output : options.outputs) {
        std::string path = output.path.empty() ? default_output_path(profile.info.pid, output.format) : output.path;
        std::ofstream out(path, std::ios::binary);
        if (!out) throw attach::Error(attach::ErrorKind::Other, "cannot write " + path + ": " + std::strerror(errno));
        exporters::write_profile(output.format, profile, write, out);
        out.close();
        if (!out) throw attach::Error(attach::ErrorKind::Other, "writing " + path + " failed");
        written.push_back(path + " (" + std::string(exporters::format_name(output.format)) + ")");
    }
    return written;
}

}  // namespace

int run_record(const RecordOptions& options) {
    StopSignals signals;
    std::unique_ptr<attach::ChildProcess> child;
    std::unique_ptr<PythonProcess> process;
    if (!options.command.empty()) {
        child = std::make_unique<attach::ChildProcess>(options.command);
        signals.forward_to(child->pid());
        process = wait_for_python(*child, options);
        if (!process) {
            int status = child->wait();
            if (!options.quiet && !stop_requested()) {
                std::fprintf(stderr, "pysample: '%s' exited before a Python interpreter started; nothing recorded\n",
                             options.command[0].c_str());
            }
            return attach::ChildProcess::exit_code(status);
        }
    } else {
        process = std::make_unique<PythonProcess>(options.pid, options.python_version);
    }

    auto recorder = std::make_unique<Recorder>(*process, options);
    auto& info = recorder->profile().info;
    info.pid = process->pid();
    info.command_line = attach::read_cmdline(process->pid());
    info.python_version = process->version().to_string();
    info.rate_hz = options.rate;
    info.start_time = timestamp("%Y-%m-%dT%H:%M:%S%z");
    if (!options.quiet) {
        std::fprintf(stderr, "pysample: sampling pid %d (Python %s) at %.0f Hz%s%s\n", process->pid(),
                     info.python_version.c_str(), options.rate, options.blocking ? ", blocking" : "",
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
        auto now = Clock::now();
        double elapsed = std::chrono::duration<double>(now - start).count();
        if (options.duration > 0 && elapsed >= options.duration) break;
        if (show_progress && now - last_progress >= std::chrono::seconds(1)) {
            print_progress(recorder->ticks(), elapsed, recorder->failed_ticks());
            last_progress = now;
        }
        timer.wait_next();
    }
    if (show_progress) std::fputs("\r\033[K", stderr);
    info.duration_s = std::chrono::duration<double>(Clock::now() - start).count();
    info.samples = recorder->ticks();
    info.errors = recorder->failed_ticks();

    std::optional<int> reaped;
    if (auto* suspender = recorder->suspender()) reaped = suspender->reaped_exit_status();
    if (target_gone && !options.quiet && !child) {
        std::fprintf(stderr, "pysample: process %d exited; writing what was recorded\n", process->pid());
    }
    auto written = write_outputs(recorder->profile(), options);
    if (!options.quiet) print_summary(*recorder, options, written);
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
                         options.command[0].c_str(), child->pid());
        }
        return attach::ChildProcess::exit_code(child->wait());
    }
    return kExitOk;
}

}  // namespace pysample::sampler
