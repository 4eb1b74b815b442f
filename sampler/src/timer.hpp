// Sampling clock and stop signals.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <limits>
#include <random>
#include <string>

namespace pysample::sampler {

// `--rate max`: no wait between samples.
inline constexpr double kRateMax = std::numeric_limits<double>::infinity();

// "250 Hz", or "max rate".
std::string describe_rate(double rate_hz);

// Ticks at absolute deadlines (start + n * interval), so the rate does not drift with the time
// each sample takes. Each deadline is moved by a random amount within a quarter interval of its
// slot: a program whose loop period is close to a multiple of the interval would otherwise be
// sampled at the same phase of its loop every time, and one part of the loop over-counted. When a
// sample overruns by more than an interval the missed ticks are dropped instead of being fired
// back to back.
class DeadlineTimer {
public:
    explicit DeadlineTimer(double rate_hz);
    // Sleeps until the next deadline; returns early when a signal arrives.
    void wait_next();
    std::uint64_t skipped() const { return skipped_; }

private:
    std::chrono::nanoseconds jitter();

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
