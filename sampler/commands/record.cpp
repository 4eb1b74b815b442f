#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <thread>

#include "attach/error.hpp"
#include "attach/launch.hpp"
#include "attach/target_files.hpp"
#include "commands/launch_target.hpp"
#include "commands/options.hpp"
#include "commands/output_file.hpp"
#include "commands/profile_files.hpp"
#include "commands/record_summary.hpp"
#include "commands/recorder.hpp"
#include "commands/source_files.hpp"
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

bool shows_source(const RecordOptions& options) {
    for (const auto& output : options.outputs) {
        if (exporters::shows_source(output.format)) return true;
    }
    return false;
}

WrittenOutputs write_outputs(const exporters::Profile& profile, const RecordOptions& options) {
    auto write = write_options(options.threads && !options.subprocesses, options.line_numbers, options.reverse,
                               options.sort, options.top);
    write.color = std::any_of(options.outputs.begin(), options.outputs.end(), [](const auto& output) {
        return output.path == kStandardOutput && ::isatty(STDOUT_FILENO);
    });
    return write_profile_files(profile, options.outputs, write,
                               [&](exporters::Format format) { return default_output_path(profile.info.pid, format); });
}

const RecordOptions::Output* recording_output(const RecordOptions& options) {
    for (const auto& output : options.outputs) {
        if (output.format == exporters::Format::Recording) return &output;
    }
    return nullptr;
}

std::string host_name() {
    char name[256] = {};
    return ::gethostname(name, sizeof(name) - 1) == 0 ? std::string(name) : std::string();
}

// The recording is written in place from the first sample on (not renamed into place at the
// end, as the other outputs are): a run that is killed leaves what was written.
std::unique_ptr<exporters::RecordingWriter> open_recording(const std::string& path, const exporters::RunInfo& run,
                                                           const RecordOptions& options) {
    int fd = path == kStandardOutput
                 ? ::fcntl(STDOUT_FILENO, F_DUPFD_CLOEXEC, 3)
                 : ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, permissions_for(path));
    if (fd < 0) {
        throw attach::Error(attach::ErrorKind::OutputUnwritable,
                            "cannot write the recording to '" + path + "': " + std::strerror(errno));
    }
    exporters::RecordingInfo info;
    info.run = run;
    info.pysample_version = PYSAMPLE_VERSION;
    info.host = host_name();
    info.rate_asked = options.rate;
    info.mode = options.gil ? "gil" : options.idle ? "wall" : "cpu";
    info.gil_read = options.gil;
    info.subprocesses = options.subprocesses;
    info.async_tasks = options.async_tasks;
    return std::make_unique<exporters::RecordingWriter>(fd, info);
}

// Ends the recording, adding it to what was written or what failed.
void finish_recording(Recorder& recorder, const std::string& path, const exporters::RunInfo& run,
                      WrittenOutputs& outputs) {
    auto* recording = recorder.recording();
    if (recording == nullptr) return;
    recording->finish(run);
    std::string name = path == kStandardOutput ? std::string("standard output") : path;
    if (std::string error = recording->error(); !error.empty()) {
        outputs.failed.push_back("the recording '" + name + "' could not be written whole: " + error);
        return;
    }
    char size[64];
    std::snprintf(size, sizeof(size), "%.1f", static_cast<double>(recording->bytes_written()) / 1024.0);
    outputs.written.push_back(name + " (recording, " + size + " KiB)");
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
        // With --subprocesses the command may be a launcher that is not Python itself.
        auto launched = launch_command(options, signals, !options.subprocesses);
        if (launched.exit_code) return *launched.exit_code;
        child = std::move(launched.child);
        process = std::move(launched.process);
        root = child->pid();
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
    auto process_started = attach::process_start_ns(root);
    info.pid = root;
    info.command_line = attach::read_cmdline(root);
    info.python_version = python_version;
    info.rate_hz = options.rate;
    info.counting = options.gil ? "GIL holder" : options.idle ? "wall-clock time" : "CPU time";
    info.start_time = timestamp("%Y-%m-%dT%H:%M:%S%z");
    info.start_unix_ns =
        std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::system_clock::now().time_since_epoch())
            .count();
    if (!options.quiet) {
        std::string what = python_target ? "pid " + std::to_string(root) + " (Python " + info.python_version + ")"
                                         : "the Python processes under pid " + std::to_string(root);
        std::fprintf(stderr, "pysample: sampling %s%s at %s%s%s\n", what.c_str(),
                     options.subprocesses && python_target ? " and its Python subprocesses" : "",
                     describe_rate(options.rate).c_str(), options.blocking ? ", blocking" : "",
                     options.duration > 0 ? "" : "; Ctrl-C to stop");
    }

    std::string recording_path;
    if (const auto* output = recording_output(options)) {
        recording_path = output->path.empty() ? default_output_path(root, output->format) : output->path;
        recorder->record_to(open_recording(recording_path, info, options));
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
    if (shows_source(options)) read_source_files(recorder->profile(), root, process_started);
    auto outputs = write_outputs(recorder->profile(), options);
    finish_recording(*recorder, recording_path, info, outputs);
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
        int child_status = finish_launched(*child, reaped, WhenDone::WaitForIt, options, "profile written");
        return written_status != kExitOk ? written_status : child_status;
    }
    return written_status;
}

}  // namespace pysample::sampler
