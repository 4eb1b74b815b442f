// `pysample top`: a live table of where the target spends its time, redrawn every refresh interval.
#include <spdlog/sinks/ringbuffer_sink.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <optional>
#include <thread>

#include "attach/error.hpp"
#include "attach/launch.hpp"
#include "commands/launch_target.hpp"
#include "commands/logging.hpp"
#include "commands/options.hpp"
#include "commands/top_screen.hpp"
#include "engine/async_stacks.hpp"
#include "engine/frames.hpp"
#include "engine/snapshot.hpp"
#include "engine/timer.hpp"
#include "exporters/utf8.hpp"
#include "sampler/cli.hpp"

namespace pysample::sampler {
namespace {

using Clock = std::chrono::steady_clock;

constexpr std::size_t kPlainRows = 20;

double seconds_between(Clock::time_point from, Clock::time_point to) {
    return std::chrono::duration<double>(to - from).count();
}

// Samples the target into per-function counts, keeping what the header reports.
class TopSampler {
public:
    TopSampler(PythonProcess& process, const TopOptions& options)
        : options_(options), snapshotter_(process, options.blocking, options.native) {
        snapshotter_.read_gil(false);
        if (options.async_tasks) {
            async_ = std::make_unique<AsyncStacks>(
                process, options.idle,
                options.async_by_coroutine ? AsyncStacks::Markers::Coroutine : AsyncStacks::Markers::Name);
            snapshotter_.inspect_each_snapshot(
                [this](std::vector<ThreadSnapshot>&) { async_->read(snapshotter_.thread_states()); });
        }
    }

    // Takes one sample; false once the target is gone.
    bool sample() {
        auto outcome = snapshotter_.take(threads_, options_.idle);
        if (outcome == Snapshotter::Outcome::ProcessGone) return false;
        counts_.add_tick();
        if (outcome == Snapshotter::Outcome::Failed) ++errors_;
        if (async_) async_->rebuild(threads_, snapshotter_.thread_states());
        for (const auto& thread : threads_) {
            if (thread.frames.empty() || thread.joined || thread.weight == 0) continue;
            count_thread(thread);
        }
        if (async_) {
            for (const auto& waiting : async_->waiting()) count_thread(waiting);
        }
        // An exiting interpreter lists no threads in its last moments: keep the last real count.
        if (!threads_.empty()) {
            threads_seen_ = idle_threads_ = 0;
            names_.clear();
            for (const auto& thread : threads_) {
                if (thread.joined) continue;  // one thread, entered into a sub-interpreter
                ++threads_seen_;
                idle_threads_ += thread.idle ? 1 : 0;
                if (!thread.name.empty()) names_.push_back(thread.name);
            }
        }
        return true;
    }

    void reset() {
        counts_.reset();
        errors_ = 0;
        reasons_at_reset_ = all_reasons();
    }

    TopCounts& counts() { return counts_; }
    std::uint64_t errors() const { return errors_; }
    std::size_t threads() const { return threads_seen_; }
    std::size_t idle_threads() const { return idle_threads_; }
    const std::vector<std::string>& thread_names() const { return names_; }
    attach::ThreadSuspender* suspender() { return snapshotter_.suspender(); }
    void serve_stops() { snapshotter_.serve_stops(); }

    // The most frequent reason a stack was rejected since the last reset.
    std::string common_error() const {
        std::uint64_t most = 0;
        std::string reason;
        for (const auto& [kind, count] : all_reasons()) {
            auto before = reasons_at_reset_.find(kind);
            std::uint64_t since = count - (before == reasons_at_reset_.end() ? 0 : before->second);
            if (since > most) {
                most = since;
                reason = std::string(describe(kind));
            }
        }
        return reason;
    }

private:
    void count_thread(const ThreadSnapshot& thread) {
        frames_.clear();
        for (const auto& frame : thread.frames) {
            frames_.push_back(profile_frame(frame, true));
            // An asyncio task's marker gets a row of its own: the samples under each task.
            if (frame.label != nullptr) frames_.back().synthetic = false;
        }
        counts_.add_stack(frames_, thread.weight);
    }

    std::map<WalkResult, std::uint64_t> all_reasons() const {
        auto reasons = snapshotter_.stats().reasons;
        for (const auto& [kind, count] : snapshotter_.stats().list_reasons) reasons[kind] += count;
        return reasons;
    }

    const TopOptions& options_;
    Snapshotter snapshotter_;
    std::unique_ptr<AsyncStacks> async_;  // with --async
    TopCounts counts_;
    std::vector<ThreadSnapshot> threads_;
    std::vector<exporters::Frame> frames_;
    std::map<WalkResult, std::uint64_t> reasons_at_reset_;
    std::uint64_t errors_ = 0;
    std::size_t threads_seen_ = 0;
    std::size_t idle_threads_ = 0;
    std::vector<std::string> names_;
};

// While the screen is shown, log messages would be drawn over it: they are kept and printed to
// stderr once the terminal is back to normal.
class LogCapture {
public:
    LogCapture() : logger_(spdlog::default_logger()), saved_(logger_->sinks()) {
        sink_ = std::make_shared<spdlog::sinks::ringbuffer_sink_mt>(kKept);
        sink_->set_formatter(log_formatter());
        logger_->sinks() = {sink_};
    }
    ~LogCapture() {
        logger_->sinks() = saved_;
        for (const auto& line : sink_->last_formatted()) std::fputs(line.c_str(), stderr);
    }
    LogCapture(const LogCapture&) = delete;
    LogCapture& operator=(const LogCapture&) = delete;

private:
    static constexpr std::size_t kKept = 200;
    std::shared_ptr<spdlog::logger> logger_;
    std::vector<spdlog::sink_ptr> saved_;
    std::shared_ptr<spdlog::sinks::ringbuffer_sink_mt> sink_;
};

bool stdout_is_screen() {
    const char* term = std::getenv("TERM");
    return ::isatty(STDOUT_FILENO) && !(term != nullptr && std::strcmp(term, "dumb") == 0);
}

void print_plain(const std::vector<ScreenLine>& lines) {
    for (const auto& line : lines) std::printf("%s\n", line.text.c_str());
    std::printf("\n");
    std::fflush(stdout);
}

// Everything the full-screen view changes, undone in reverse order: the terminal first, then the
// signal handlers, then the log lines held back meanwhile are printed.
struct FullScreen {
    FullScreen() {
        if (::isatty(STDERR_FILENO)) logs.emplace();
    }
    std::optional<LogCapture> logs;
    ScreenSignals signals;
    TerminalScreen terminal{STDIN_FILENO, STDOUT_FILENO};
};

enum class TopEnd { Stopped, Quit, TargetExited, DurationReached };

class TopSession {
public:
    TopSession(PythonProcess& process, const TopOptions& options, attach::ChildProcess* child)
        : options_(options), child_(child), sampler_(process, options) {
        status_.pid = process.pid();
        status_.command_line = attach::read_cmdline(process.pid());
        status_.python_version = process.version().to_string();
        status_.rate_asked = options.rate;
        status_.refresh_interval_s = options.interval;
        status_.idle_included = options.idle;
        status_.blocking = options.blocking;
        status_.native = options.native != NativeMode::Off;
    }

    TopEnd run() {
        bool on_screen = stdout_is_screen();
        std::optional<FullScreen> full_screen;
        if (on_screen) full_screen.emplace();
        screen_ = full_screen ? &*full_screen : nullptr;
        TopEnd end = sample_until_done();
        full_screen.reset();
        screen_ = nullptr;
        update_status();
        bool ended_by_itself = end == TopEnd::TargetExited || end == TopEnd::DurationReached;
        if (on_screen ? ended_by_itself : sampler_.counts().ticks() > printed_ticks_) {
            print_plain(render_top(sampler_.counts(), status_, view_, plain_layout()));
        }
        return end;
    }

    pid_t pid() const { return status_.pid; }
    double running_s() const { return status_.running_s; }
    attach::ThreadSuspender* suspender() { return sampler_.suspender(); }

private:
    TopEnd sample_until_done() {
        DeadlineTimer timer(options_.rate);
        start_ = counts_start_ = Clock::now();
        auto interval = std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(options_.interval));
        auto next_refresh = start_ + interval;
        if (screen_) show();
        while (!stop_requested()) {
            if (child_exited()) return TopEnd::TargetExited;
            if (!sampler_.sample()) return TopEnd::TargetExited;
            auto now = Clock::now();
            if (options_.duration > 0 && seconds_between(start_, now) >= options_.duration) {
                return TopEnd::DurationReached;
            }
            bool redraw = false;
            if (screen_) {
                if (handle_keys(redraw)) return TopEnd::Quit;
                redraw |= handle_signals(screen_->signals);
            }
            if (now >= next_refresh) {
                sampler_.counts().close_window();
                // A late refresh (pysample had no CPU for a while) keeps the grid, without a second one right after.
                while (next_refresh <= now + interval / 2) next_refresh += interval;
                redraw = true;
            }
            if (redraw) show();
            timer.wait_next([&] { sampler_.serve_stops(); });
        }
        return TopEnd::Stopped;
    }

    bool child_exited() {
        if (child_ == nullptr) return false;
        if (auto* suspender = sampler_.suspender(); suspender && suspender->reaped_exit_status()) {
            child_->set_reaped(*suspender->reaped_exit_status());
        }
        return child_->poll().has_value();
    }

    // Applies the keys pressed since the last sample; true when one of them quits.
    bool handle_keys(bool& redraw) {
        for (char key : screen_->terminal.read_keys()) {
            switch (apply_key(key, view_)) {
                case KeyAction::Quit: return true;
                case KeyAction::Reset:
                    sampler_.reset();
                    counts_start_ = Clock::now();
                    redraw = true;
                    break;
                case KeyAction::Redraw: redraw = true; break;
                case KeyAction::None: break;
            }
        }
        return false;
    }

    // A resize redraws; Ctrl-Z gives the terminal back while pysample is stopped.
    bool handle_signals(ScreenSignals& signals) {
        bool redraw = false;
        if (signals.take_suspend()) {
            screen_->terminal.suspend();
            auto stopped = Clock::now();
            signals.stop_self();
            // Nothing was sampled while stopped: leave that time out of the rate and the times.
            auto pause = Clock::now() - stopped;
            start_ += pause;
            counts_start_ += pause;
            screen_->terminal.resume();
            redraw = true;
        }
        if (signals.take_resized()) redraw = true;
        return redraw;
    }

    void update_status() {
        auto now = Clock::now();
        status_.elapsed_s = seconds_between(counts_start_, now);
        status_.running_s = seconds_between(start_, now);
        status_.errors = sampler_.errors();
        status_.common_error = sampler_.common_error();
        status_.threads = sampler_.threads();
        status_.idle_threads = sampler_.idle_threads();
        status_.thread_names = sampler_.thread_names();
    }

    TopLayout plain_layout() const {
        TopLayout layout;
        layout.rows = options_.rows > 0 ? options_.rows : kPlainRows;
        layout.footer = false;
        return layout;
    }

    void show() {
        update_status();
        if (!screen_) {
            print_plain(render_top(sampler_.counts(), status_, view_, plain_layout()));
            printed_ticks_ = sampler_.counts().ticks();
            return;
        }
        auto size = screen_->terminal.size();
        TopLayout layout;
        layout.width = size.columns;
        layout.height = size.rows;
        layout.rows = options_.rows;
        screen_->terminal.draw(render_top(sampler_.counts(), status_, view_, layout));
    }

    const TopOptions& options_;
    attach::ChildProcess* child_;
    TopSampler sampler_;
    TopStatus status_;
    TopView view_;
    FullScreen* screen_ = nullptr;  // set while the full-screen view is shown
    Clock::time_point start_;
    Clock::time_point counts_start_;
    std::uint64_t printed_ticks_ = 0;
};

}  // namespace

int run_top(const TopOptions& options) {
    StopSignals signals;
    std::unique_ptr<attach::ChildProcess> child;
    std::unique_ptr<PythonProcess> process;
    if (!options.command.empty()) {
        auto launched = launch_command(options, signals, true);
        if (launched.exit_code) return *launched.exit_code;
        child = std::move(launched.child);
        process = std::move(launched.process);
    } else {
        process = std::make_unique<PythonProcess>(options.pid, options.python_version);
    }

    auto session = std::make_unique<TopSession>(*process, options, child.get());
    TopEnd end = session->run();
    if (end == TopEnd::TargetExited && !options.quiet) {
        std::fprintf(stderr, "pysample: process %d exited after %.1f s of sampling\n", session->pid(),
                     session->running_s());
    }
    std::optional<int> reaped;
    if (auto* suspender = session->suspender()) reaped = suspender->reaped_exit_status();
    // Detach (when threads are held) before waiting for a launched child, whose stops would otherwise wait for us.
    session.reset();
    if (child) return finish_launched(*child, reaped, WhenDone::StopIt, options, "");
    return kExitOk;
}

}  // namespace pysample::sampler
