#include "timer.hpp"

#include <atomic>
#include <csignal>
#include <cstdio>
#include <ctime>

namespace pysample::sampler {
namespace {

std::atomic<int> g_stop_signal{0};
std::atomic<pid_t> g_forward_pid{0};
struct sigaction g_previous_int {};
struct sigaction g_previous_term {};

void on_stop_signal(int sig) {
    g_stop_signal.store(sig);
    pid_t child = g_forward_pid.load();
    if (child > 0 && sig == SIGTERM) ::kill(child, SIGTERM);
}

}  // namespace

std::string describe_rate(double rate_hz) {
    if (rate_hz == kRateMax) return "max rate";
    char text[32];
    std::snprintf(text, sizeof(text), "%.0f Hz", rate_hz);
    return text;
}

DeadlineTimer::DeadlineTimer(double rate_hz)
    : interval_(rate_hz == kRateMax ? std::chrono::nanoseconds(0)
                                    : std::chrono::nanoseconds(static_cast<std::int64_t>(1e9 / rate_hz))),
      slot_(std::chrono::steady_clock::now()),
      random_(std::random_device{}()) {}

std::chrono::nanoseconds DeadlineTimer::jitter() {
    std::int64_t quarter = interval_.count() / 4;
    if (quarter == 0) return std::chrono::nanoseconds(0);
    std::uniform_int_distribution<std::int64_t> offset(-quarter, quarter);
    return std::chrono::nanoseconds(offset(random_));
}

void DeadlineTimer::wait_next() {
    if (interval_.count() == 0) return;
    slot_ += interval_;
    auto now = std::chrono::steady_clock::now();
    if (now > slot_ + interval_) {
        skipped_ += static_cast<std::uint64_t>((now - slot_) / interval_);
        slot_ = now;
        return;
    }
    auto deadline_point = slot_ + jitter();
    auto since_epoch = std::chrono::duration_cast<std::chrono::nanoseconds>(deadline_point.time_since_epoch()).count();
    timespec deadline{static_cast<time_t>(since_epoch / 1'000'000'000), static_cast<long>(since_epoch % 1'000'000'000)};
    // steady_clock is CLOCK_MONOTONIC on Linux. EINTR (a stop signal) ends the wait early.
    ::clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &deadline, nullptr);
}

StopSignals::StopSignals() {
    struct sigaction action {};
    action.sa_handler = on_stop_signal;
    sigemptyset(&action.sa_mask);
    action.sa_flags = 0;  // no SA_RESTART: sleeps and waits return so the loop can stop
    ::sigaction(SIGINT, &action, &g_previous_int);
    ::sigaction(SIGTERM, &action, &g_previous_term);
}

StopSignals::~StopSignals() {
    ::sigaction(SIGINT, &g_previous_int, nullptr);
    ::sigaction(SIGTERM, &g_previous_term, nullptr);
    g_forward_pid.store(0);
}

void StopSignals::forward_to(pid_t child) { g_forward_pid.store(child); }

bool stop_requested() { return g_stop_signal.load() != 0; }
int stop_signal() { return g_stop_signal.load(); }

}  // namespace pysample::sampler
