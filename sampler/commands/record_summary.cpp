#include "commands/record_summary.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cstdio>
#include <ctime>
#include <map>
#include <string>

#include "attach/error.hpp"
#include "engine/timer.hpp"
#include "exporters/exporters.hpp"
#include "exporters/utf8.hpp"

namespace pysample::sampler {

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

namespace {

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

}  // namespace

void print_async_summary(const AsyncStats& async) {
    if (!async.available) {
        std::fprintf(stderr, "pysample: --async: no asyncio task read (%s); stacks are shown as threads\n",
                     exporters::escape_control_characters(async.reason).c_str());
        return;
    }
    std::fprintf(stderr, "pysample: asyncio: %llu stack%s rebuilt along their task's await chain",
                 static_cast<unsigned long long>(async.task_samples), async.task_samples == 1 ? "" : "s");
    if (async.new_task_samples > 0) {
        std::fprintf(stderr, " (%llu of tasks newer than the last read of the tasks, without the tasks awaiting them)",
                     static_cast<unsigned long long>(async.new_task_samples));
    }
    std::fprintf(stderr, ", %llu of event-loop threads outside any task",
                 static_cast<unsigned long long>(async.outside_tasks));
    if (async.waiting_samples > 0) {
        std::fprintf(stderr, ", %llu of waiting tasks", static_cast<unsigned long long>(async.waiting_samples));
    }
    std::fprintf(stderr, "; %zu tasks in the last of %llu reads", async.tasks,
                 static_cast<unsigned long long>(async.reads));
    if (async.tasks_unreadable > 0) {
        std::fprintf(stderr, " (%llu more not readable)", static_cast<unsigned long long>(async.tasks_unreadable));
    }
    std::fprintf(stderr, "\n");
    if (async.oldest_read_ms > static_cast<std::uint64_t>(AsyncStacks::kMaxReadInterval.count()) * 2) {
        std::fprintf(stderr,
                     "pysample: asyncio: the machine left the task reader little time: samples used reads up to "
                     "%llu ms old for the tasks awaiting the running one, and the waiting ones\n",
                     static_cast<unsigned long long>(async.oldest_read_ms));
    }
}

void print_summary(Recorder& recorder, const RecordOptions& options, const std::vector<std::string>& written) {
    const auto& info = recorder.profile().info;
    auto totals = recorder.totals();
    const auto& stats = totals.snapshots;
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
    if (options.native != NativeMode::Off) print_native_summary(totals.native);
    if (totals.async_used) print_async_summary(totals.async);
    if (recorder.stops_each_thread()) {
        std::fprintf(stderr, "pysample: each thread was stopped for %.1f us per stack read on average\n",
                     static_cast<double>(recorder.mean_pause().count()) / 1000.0);
    } else if (options.blocking) {
        std::fprintf(stderr, "pysample: threads were stopped for %.1f us per sample on average\n",
                     static_cast<double>(recorder.mean_pause().count()) / 1000.0);
    }
    print_stop_failures(totals.stops);
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

}  // namespace pysample::sampler
