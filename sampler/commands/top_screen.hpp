// `pysample top`: per-function counts, the table and header drawn from them, and the terminal
// state a full-screen view needs.
#pragma once

#include <sys/types.h>
#include <termios.h>

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "exporters/profile.hpp"

namespace pysample::sampler {

enum class TopColumn { OwnPercent, TotalPercent, OwnTime, TotalTime };
enum class TopGrouping { Function, Line };

// One row of the table: a function (lines merged), or one line of a function.
struct TopEntry {
    exporters::Frame frame;  // line is 0 for a function row
    // Since the start or the last reset: samples with it innermost, and with it anywhere on the
    // stack (once per sample, however often it recurses).
    std::uint64_t own = 0;
    std::uint64_t total = 0;
    // The same over the last completed refresh window, and over the window being filled.
    std::uint64_t window_own = 0;
    std::uint64_t window_total = 0;
    std::uint64_t current_own = 0;
    std::uint64_t current_total = 0;
    std::uint64_t last_stack = 0;  // serial of the last stack counted in total
};

// Sample counts per function and per line. A function is its name, file and first line, so two
// functions of one name in one file (lambdas, methods of different classes before 3.11) stay apart.
class TopCounts {
public:
    // One sampling tick: the denominator of every percentage.
    void add_tick();
    // One thread's stack in the current tick, innermost frame first.
    void add_stack(std::span<const exporters::Frame> innermost_first, std::uint64_t samples = 1);
    // Ends the current refresh window; its counts become the `window_*` ones.
    void close_window();
    void reset();

    std::uint64_t ticks() const { return ticks_; }
    std::uint64_t window_ticks() const { return window_ticks_; }
    const std::vector<TopEntry>& entries(TopGrouping grouping) const {
        return grouping == TopGrouping::Function ? functions_.entries : lines_.entries;
    }

private:
    struct Table {
        std::vector<TopEntry> entries;
        std::unordered_map<exporters::Frame, std::size_t, exporters::FrameHash> index;
        TopEntry& entry(const exporters::Frame& frame);
        void count(std::span<const exporters::Frame> innermost_first, bool by_line, std::uint64_t stack,
                   std::uint64_t samples);
        void close_window();
    };

    Table functions_;
    Table lines_;
    std::uint64_t ticks_ = 0;
    std::uint64_t current_ticks_ = 0;
    std::uint64_t window_ticks_ = 0;
    std::uint64_t stacks_ = 0;
};

// What the user chose to see; changed by keys.
struct TopView {
    TopColumn sort = TopColumn::OwnPercent;
    TopGrouping grouping = TopGrouping::Function;
    bool window_percent = false;  // % columns over the last refresh window instead of since the start
    bool help = false;
};

enum class KeyAction { None, Redraw, Reset, Quit };
// Applies one key press to the view.
KeyAction apply_key(char key, TopView& view);

// The run as the header describes it.
struct TopStatus {
    pid_t pid = 0;
    std::string command_line;
    std::string python_version;
    double rate_asked = 0;
    double refresh_interval_s = 1;
    double elapsed_s = 0;      // since the counts started (start or last reset)
    double running_s = 0;      // since the start
    std::uint64_t errors = 0;  // ticks with a stack that could not be read whole
    std::string common_error;  // why, the most frequent reason
    std::size_t threads = 0;   // Python threads in the last sample
    std::size_t idle_threads = 0;
    std::vector<std::string> thread_names;  // as the program names them (threading), else the kernel's
    bool idle_included = false;
    bool blocking = false;
    bool native = false;
};

enum class LineStyle { Plain, Heading, TableHeader, Footer };

struct ScreenLine {
    std::string text;
    LineStyle style = LineStyle::Plain;
    std::size_t highlight_begin = 0;  // code points of `text` to emphasise, [begin, end)
    std::size_t highlight_end = 0;
};

struct TopLayout {
    std::size_t width = 0;   // columns to fit lines into; 0: no limit
    std::size_t height = 0;  // lines of the screen; 0: no limit, every line is printed
    std::size_t rows = 0;    // most table rows to show; 0: as many as the height allows (all without one)
    bool footer = true;      // the key line at the bottom (the screen only)
};

// The whole screen, top to bottom: header, table, footer.
std::vector<ScreenLine> render_top(const TopCounts& counts, const TopStatus& status, const TopView& view,
                                   const TopLayout& layout);

// Text from the target made safe to print to a terminal: invalid UTF-8 and control characters
// (escape sequences included) become U+FFFD.
std::string terminal_text(std::string_view text);
std::size_t display_width(std::string_view text);
// At most `width` code points of `text`.
std::string fit_width(std::string_view text, std::size_t width);
// Seconds as the time columns show them: fewer decimals as the value grows.
std::string format_seconds(double seconds);

// The terminal as a full-screen view needs it. Constructing it switches to the alternate screen
// and hides the cursor; with a terminal on `input_fd` it also turns off line buffering and echo
// (signals from Ctrl-C and Ctrl-Z still work). The destructor restores everything.
class TerminalScreen {
public:
    TerminalScreen(int input_fd, int output_fd);
    ~TerminalScreen();
    TerminalScreen(const TerminalScreen&) = delete;
    TerminalScreen& operator=(const TerminalScreen&) = delete;

    // Gives the terminal back as it was (for Ctrl-Z) and takes it again.
    void suspend();
    void resume();

    struct Size {
        std::size_t rows = 24;
        std::size_t columns = 80;
    };
    Size size() const;
    void draw(const std::vector<ScreenLine>& lines);
    // Key presses waiting on the input, without blocking; escape sequences (arrows) are dropped.
    std::string read_keys();

private:
    void enter();
    void leave();
    void write_all(std::string_view bytes) const;

    int input_fd_;
    int output_fd_;
    std::optional<termios> saved_modes_;  // set while keys are read raw
    bool entered_ = false;
};

// SIGWINCH, SIGTSTP and SIGCONT while the screen is shown: each sets a flag the loop polls.
// Installed without SA_RESTART, so the sampling sleep returns at once.
class ScreenSignals {
public:
    ScreenSignals();
    ~ScreenSignals();
    ScreenSignals(const ScreenSignals&) = delete;
    ScreenSignals& operator=(const ScreenSignals&) = delete;

    bool take_resized();
    bool take_suspend();
    // Stops pysample as Ctrl-Z asks; returns once continued.
    void stop_self();
};

}  // namespace pysample::sampler
