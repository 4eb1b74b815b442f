// Sampling clock and stop signals.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <limits>
#include <random>
#include <string>

namespace pysample::sampler {

// `--rate max`: no wait between samples.
inline constexpr double kRateMax = std::numeric_limits<double>::infinity();

// "250 Hz", or "max rate".
std::string describe_rate(double rate_hz);

// Ticks once in each slot of one interval (start + n * interval, so the rate does not drift with
// the time each sample takes), at a moment drawn uniformly over the whole slot. Every phase of any
// periodic activity in the program is then sampled equally often, whatever its period: with
// regular ticks, or ticks jittered by less than an interval, a program that does something every
// 4 ms sampled at 250 or 500 Hz is seen at the same phase every time, and that thing counted
// either always or never. When a sample overruns by more than a slot, the missed slots are dropped
// rather than fired back to back.
//
// While it waits, the timer also wakes for SIGCHLD, which the kernel sends pysample when a thread
// it traces stops: `on_child_event` can let go of the thread at once rather than at the next tick.
class DeadlineTimer {
public:
    explicit DeadlineTimer(double rate_hz);
    // Sleeps until the next deadline and returns it (now, at the maximum rate); returns early when
    // a stop signal arrives.
    std::chrono::steady_clock::time_point wait_next(const std::function<void()>& on_child_event = {});
    std::uint64_t skipped() const { return skipped_; }

private:
    std::chrono::nanoseconds offset_in_slot();

    std::chrono::nanoseconds interval_;
    std::chrono::steady_clock::time_point slot_;  // start + n * interval
    std::minstd_rand random_;
    std::uint64_t skipped_ = 0;
};

// SIGINT and SIGTERM set a flag instead of killing pysample, so the profile collected so far is
// written. In launch mode SIGTERM is passed on to the child (SIGINT from a terminal reaches it anyway).
class StopSignals {
public:
    StopSignals();
    ~StopSignals();
    StopSignals(const StopSignals&) = delete;
    StopSignals& operator=(const StopSignals&) = delete;
    void forward_to(pid_t child);
};

bool stop_requested();
int stop_signal();

}  // namespace pysample::sampler
