#include "engine/timer.hpp"

#include <fcntl.h>
#include <poll.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <csignal>
#include <cstdio>
#include <ctime>

namespace pysample::sampler {
namespace {

std::atomic<int> g_stop_signal{0};
std::atomic<pid_t> g_forward_pid{0};
struct sigaction g_previous_int {};
struct sigaction g_previous_term {};
int g_child_events[2] = {-1, -1};

void on_stop_signal(int sig) {
    g_stop_signal.store(sig);
    pid_t child = g_forward_pid.load();
    if (child > 0 && sig == SIGTERM) ::kill(child, SIGTERM);
}

void on_child_event(int) {
    int saved = errno;
    char byte = 0;
    [[maybe_unused]] auto written = ::write(g_child_events[1], &byte, 1);
    errno = saved;
}

// A pipe that SIGCHLD writes a byte into (a full pipe drops it: one is enough to wake the wait).
int child_events_fd() {
    static const int fd = [] {
        if (::pipe2(g_child_events, O_CLOEXEC | O_NONBLOCK) != 0) return -1;
        struct sigaction action {};
        action.sa_handler = on_child_event;
        sigemptyset(&action.sa_mask);
        action.sa_flags = SA_RESTART;  // never SA_NOCLDSTOP: a traced thread's stop is what it reports
        ::sigaction(SIGCHLD, &action, nullptr);
        return g_child_events[0];
    }();
    return fd;
}

bool pipe_has_events() {
    pollfd events{child_events_fd(), POLLIN, 0};
    return ::poll(&events, 1, 0) > 0;
}

// Whether SIGCHLD came since the last call.
bool drain_child_events() {
    int fd = child_events_fd();
    if (fd < 0) return false;
    char buffer[64];
    bool any = false;
    while (::read(fd, buffer, sizeof buffer) > 0) any = true;
    return any;
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
      random_(std::random_device{}()) {
    child_events_fd();
}

std::chrono::nanoseconds DeadlineTimer::offset_in_slot() {
    if (interval_.count() <= 1) return std::chrono::nanoseconds(0);
    std::uniform_int_distribution<std::int64_t> offset(0, interval_.count() - 1);
    return std::chrono::nanoseconds(offset(random_));
}

std::chrono::steady_clock::time_point DeadlineTimer::wait_next(const std::function<void()>& on_child_event) {
    if (interval_.count() == 0) {
        if (on_child_event && drain_child_events()) on_child_event();
        return std::chrono::steady_clock::now();
    }
    slot_ += interval_;
    auto now = std::chrono::steady_clock::now();
    if (now >= slot_ + interval_) {
        skipped_ += static_cast<std::uint64_t>((now - slot_) / interval_);
        slot_ += ((now - slot_) / interval_) * interval_;
    }
    auto deadline = slot_ + offset_in_slot();
    for (;;) {
        bool child_event = drain_child_events();
        if (child_event && on_child_event) on_child_event();
        now = std::chrono::steady_clock::now();
        if (now >= deadline || stop_requested()) return deadline;
        auto left = std::chrono::duration_cast<std::chrono::nanoseconds>(deadline - now).count();
        timespec timeout{static_cast<time_t>(left / 1'000'000'000), static_cast<long>(left % 1'000'000'000)};
        pollfd events{child_events_fd(), POLLIN, 0};
        // SIGCHLD makes the pipe readable (and may end the wait with EINTR too); any other signal
        // (a stop signal, a terminal resized) ends the wait early.
        if (::ppoll(&events, 1, &timeout, nullptr) < 0 && !(errno == EINTR && pipe_has_events())) return deadline;
    }
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
