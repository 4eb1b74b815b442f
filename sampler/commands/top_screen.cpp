#include "commands/top_screen.hpp"

#include <sys/ioctl.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <tuple>
#include <utility>

#include "engine/timer.hpp"
#include "exporters/utf8.hpp"

namespace pysample::sampler {
namespace {

// ---- text ----------------------------------------------------------------------------------

bool is_continuation(unsigned char byte) { return (byte & 0xC0) == 0x80; }

// The length of the well-formed UTF-8 sequence at `at`, or 0 (stray or missing continuation
// bytes, overlong forms, surrogates, past U+10FFFF).
bool is_control(char32_t code_point) {
    return code_point < 0x20 || code_point == 0x7F || (code_point >= 0x80 && code_point < 0xA0);
}

// The last `width` code points of `text`.
std::string_view tail(std::string_view text, std::size_t width) {
    std::size_t points = 0;
    std::size_t at = text.size();
    while (at > 0 && points < width) {
        --at;
        if (!is_continuation(static_cast<unsigned char>(text[at]))) ++points;
    }
    return text.substr(at);
}

std::string pad_left(std::string_view text, std::size_t width) {
    std::size_t shown = display_width(text);
    return std::string(shown < width ? width - shown : 0, ' ') + std::string(text);
}

std::string format_percent(std::uint64_t count, std::uint64_t ticks) {
    char buf[32];
    std::snprintf(buf, sizeof(buf), "%.1f%%",
                  ticks == 0 ? 0.0 : 100.0 * static_cast<double>(count) / static_cast<double>(ticks));
    return buf;
}

std::string format_number(double value, const char* format) {
    char buf[64];
    std::snprintf(buf, sizeof(buf), format, value);
    return buf;
}

// Elapsed time in the header: seconds while short, else h:mm:ss.
std::string format_elapsed(double seconds) {
    if (seconds < 60) return format_number(seconds, "%.1f s");
    auto whole = static_cast<long long>(seconds);
    char buf[48];
    std::snprintf(buf, sizeof(buf), "%lld:%02lld:%02lld", whole / 3600, whole / 60 % 60, whole % 60);
    return buf;
}

// ---- table ---------------------------------------------------------------------------------

struct Column {
    TopColumn column;
    std::string_view title;
    std::size_t width;  // right-aligned, including the spaces before it
};

constexpr std::array<Column, 4> kColumns{{
    {TopColumn::OwnPercent, "%Own", 7},
    {TopColumn::TotalPercent, "%Total", 8},
    {TopColumn::OwnTime, "OwnTime", 9},
    {TopColumn::TotalTime, "TotalTime", 11},
}};
constexpr std::string_view kLabelGap = "  ";

const Column& column_of(TopColumn column) {
    return *std::find_if(kColumns.begin(), kColumns.end(), [&](const Column& c) { return c.column == column; });
}

std::uint64_t own_shown(const TopEntry& entry, const TopView& view) {
    return view.window_percent ? entry.window_own : entry.own;
}

std::uint64_t total_shown(const TopEntry& entry, const TopView& view) {
    return view.window_percent ? entry.window_total : entry.total;
}

// The sort key of a row, then its tie-breakers: the other count, then the cumulative counts.
std::tuple<std::uint64_t, std::uint64_t, std::uint64_t, std::uint64_t> sort_key(const TopEntry& entry,
                                                                                const TopView& view) {
    switch (view.sort) {
        case TopColumn::OwnPercent: return {own_shown(entry, view), total_shown(entry, view), entry.own, entry.total};
        case TopColumn::TotalPercent: return {total_shown(entry, view), own_shown(entry, view), entry.total, entry.own};
        case TopColumn::OwnTime: return {entry.own, entry.total, 0, 0};
        case TopColumn::TotalTime: return {entry.total, entry.own, 0, 0};
    }
    return {};
}

std::vector<const TopEntry*> sorted_entries(const TopCounts& counts, const TopView& view) {
    std::vector<const TopEntry*> rows;
    for (const auto& entry : counts.entries(view.grouping)) {
        if (entry.total > 0) rows.push_back(&entry);
    }
    std::sort(rows.begin(), rows.end(), [&](const TopEntry* a, const TopEntry* b) {
        auto ka = sort_key(*a, view);
        auto kb = sort_key(*b, view);
        if (ka != kb) return ka > kb;
        return std::tie(a->frame.function, a->frame.filename, a->frame.line) <
               std::tie(b->frame.function, b->frame.filename, b->frame.line);
    });
    return rows;
}

// "function (file:line)"; when it is wider than `width`, the file loses its start first.
std::string row_label(const TopEntry& entry, TopGrouping grouping, std::size_t width) {
    std::string function = terminal_text(entry.frame.function);
    std::string location = terminal_text(entry.frame.filename);
    int line = grouping == TopGrouping::Line ? entry.frame.line : entry.frame.first_line;
    if (line > 0) location += ":" + std::to_string(line);
    if (location.empty()) return width > 0 ? fit_width(function, width) : function;  // a task's marker
    std::string label = function + " (" + location + ")";
    std::size_t excess = width > 0 && display_width(label) > width ? display_width(label) - width : 0;
    constexpr std::size_t kShortestLocation = 12;
    if (excess > 0 && display_width(location) >= excess + kShortestLocation) {
        location = "..." + std::string(tail(location, display_width(location) - excess - 3));
        label = function + " (" + location + ")";
    }
    return width > 0 ? fit_width(label, width) : label;
}

std::string table_header(TopGrouping grouping) {
    std::string text;
    for (const auto& column : kColumns) text += pad_left(column.title, column.width);
    text += kLabelGap;
    text += grouping == TopGrouping::Line ? "Function (file:line)" : "Function (file:first line)";
    return text;
}

std::string table_row(const TopEntry& entry, const TopCounts& counts, const TopStatus& status, const TopView& view,
                      std::size_t width) {
    std::uint64_t ticks = view.window_percent ? counts.window_ticks() : counts.ticks();
    double seconds_per_tick = counts.ticks() == 0 ? 0.0 : status.elapsed_s / static_cast<double>(counts.ticks());
    std::string text =
        pad_left(format_percent(own_shown(entry, view), ticks), column_of(TopColumn::OwnPercent).width) +
        pad_left(format_percent(total_shown(entry, view), ticks), column_of(TopColumn::TotalPercent).width) +
        pad_left(format_seconds(static_cast<double>(entry.own) * seconds_per_tick),
                 column_of(TopColumn::OwnTime).width) +
        pad_left(format_seconds(static_cast<double>(entry.total) * seconds_per_tick),
                 column_of(TopColumn::TotalTime).width) +
        std::string(kLabelGap);
    std::size_t room = width > text.size() ? width - text.size() : 0;
    return text + row_label(entry, view.grouping, width == 0 ? 0 : std::max<std::size_t>(room, 1));
}

std::string_view column_name(TopColumn column) { return column_of(column).title; }

// ---- header --------------------------------------------------------------------------------

std::string errors_text(const TopStatus& status, std::uint64_t ticks) {
    std::string text = "errors: " + std::to_string(status.errors);
    if (status.errors == 0) return text;
    text += " (" + format_percent(status.errors, ticks);
    if (!status.common_error.empty()) text += ", mostly " + status.common_error;
    return text + ")";
}

std::vector<std::string> header_lines(const TopCounts& counts, const TopStatus& status, const TopView& view) {
    double rate = status.elapsed_s > 0 ? static_cast<double>(counts.ticks()) / status.elapsed_s : 0.0;
    std::string title = "pysample top - pid " + std::to_string(status.pid) + " - Python " +
                        terminal_text(status.python_version) + " - " + terminal_text(status.command_line);
    std::string samples = "Samples: " + std::to_string(counts.ticks()) + " in " + format_elapsed(status.elapsed_s) +
                          " (" + format_number(rate, "%.1f") + " Hz achieved, " + describe_rate(status.rate_asked) +
                          " asked), " + errors_text(status, counts.ticks());
    std::string elapsed = "Elapsed: " + format_elapsed(status.running_s);
    if (status.running_s - status.elapsed_s >= 0.05) {
        elapsed += " (counts reset " + format_elapsed(status.elapsed_s) + " ago)";
    }
    std::string threads = "Threads: " + std::to_string(status.threads) + " (" +
                          std::to_string(status.threads - status.idle_threads) + " active, " +
                          std::to_string(status.idle_threads) + " idle" +
                          (status.idle_included ? ", idle sampled" : "") + ")   " + elapsed;
    if (!status.thread_names.empty()) {
        threads += "   Names:";
        for (std::size_t i = 0; i < status.thread_names.size(); ++i) {
            threads += (i == 0 ? " " : ", ") + status.thread_names[i];
        }
    }
    std::string mode = status.blocking ? "blocking" : "nonblocking";
    if (status.native) mode += ", native";
    std::string settings = "Sort: " + std::string(column_name(view.sort)) + "   %: " +
                           (view.window_percent ? "last " + format_number(status.refresh_interval_s, "%g") + " s"
                                                : std::string("cumulative")) +
                           "   Rows: " + (view.grouping == TopGrouping::Line ? "lines" : "functions") +
                           "   Mode: " + mode;
    return {title, samples, threads, settings};
}

std::vector<std::string> footer_lines(const TopView& view) {
    if (!view.help) return {"Keys: q quit, 1-4 sort, ? help"};
    return {
        "Keys: 1 sort by %Own (also o), 2 by %Total (also t), 3 by OwnTime, 4 by TotalTime",
        "      l rows by function / by line, w %: cumulative / last refresh, r reset counts, q quit, ? close help",
    };
}

std::string no_rows_text(const TopCounts& counts, const TopStatus& status) {
    if (counts.ticks() == 0) return "  collecting samples...";
    if (!status.idle_included) return "  no thread has been seen running yet (--idle includes waiting threads)";
    return "  no Python stack has been read yet";
}

}  // namespace

// ---- counts --------------------------------------------------------------------------------

TopEntry& TopCounts::Table::entry(const exporters::Frame& frame) {
    auto [it, inserted] = index.try_emplace(frame, entries.size());
    if (inserted) entries.push_back({frame});
    return entries[it->second];
}

namespace {

exporters::Frame without_line(const exporters::Frame& frame) {
    exporters::Frame function = frame;
    function.line = 0;
    return function;
}

}  // namespace

void TopCounts::Table::count(std::span<const exporters::Frame> innermost_first, bool by_line, std::uint64_t stack,
                             std::uint64_t samples) {
    for (std::size_t i = 0; i < innermost_first.size(); ++i) {
        const auto& frame = innermost_first[i];
        if (frame.synthetic) continue;  // a marker is no function
        TopEntry& row = by_line ? entry(frame) : entry(without_line(frame));
        if (i == 0) {
            row.own += samples;
            row.current_own += samples;
        }
        if (row.last_stack != stack) {
            row.last_stack = stack;
            row.total += samples;
            row.current_total += samples;
        }
    }
}

void TopCounts::Table::close_window() {
    for (auto& row : entries) {
        row.window_own = std::exchange(row.current_own, 0);
        row.window_total = std::exchange(row.current_total, 0);
    }
}

void TopCounts::add_tick() {
    ++ticks_;
    ++current_ticks_;
}

void TopCounts::add_stack(std::span<const exporters::Frame> innermost_first, std::uint64_t samples) {
    if (innermost_first.empty() || samples == 0) return;
    ++stacks_;
    functions_.count(innermost_first, false, stacks_, samples);
    lines_.count(innermost_first, true, stacks_, samples);
}

void TopCounts::close_window() {
    window_ticks_ = std::exchange(current_ticks_, 0);
    functions_.close_window();
    lines_.close_window();
}

void TopCounts::reset() { *this = TopCounts(); }

KeyAction apply_key(char key, TopView& view) {
    switch (key) {
        case '1':
        case 'o': view.sort = TopColumn::OwnPercent; return KeyAction::Redraw;
        case '2':
        case 't': view.sort = TopColumn::TotalPercent; return KeyAction::Redraw;
        case '3': view.sort = TopColumn::OwnTime; return KeyAction::Redraw;
        case '4': view.sort = TopColumn::TotalTime; return KeyAction::Redraw;
        case 'l':
        case 'L':
            view.grouping = view.grouping == TopGrouping::Function ? TopGrouping::Line : TopGrouping::Function;
            return KeyAction::Redraw;
        case 'w':
        case 'W': view.window_percent = !view.window_percent; return KeyAction::Redraw;
        case '?':
        case 'h':
        case 'H': view.help = !view.help; return KeyAction::Redraw;
        case 'r':
        case 'R': return KeyAction::Reset;
        case 'q':
        case 'Q':
        case '\x03': return KeyAction::Quit;
        default: return KeyAction::None;
    }
}

// ---- rendering -----------------------------------------------------------------------------

std::vector<ScreenLine> render_top(const TopCounts& counts, const TopStatus& status, const TopView& view,
                                   const TopLayout& layout) {
    std::vector<ScreenLine> lines;
    auto fit = [&](std::string text) { return layout.width > 0 ? fit_width(text, layout.width) : text; };
    auto header = header_lines(counts, status, view);
    for (std::size_t i = 0; i < header.size(); ++i) {
        lines.push_back({fit(header[i]), i == 0 ? LineStyle::Heading : LineStyle::Plain});
    }
    lines.push_back({});

    ScreenLine columns{fit(table_header(view.grouping)), LineStyle::TableHeader};
    std::size_t end = 0;
    for (const auto& column : kColumns) {
        end += column.width;
        if (column.column == view.sort) {
            columns.highlight_begin = end - column.title.size();
            columns.highlight_end = end;
        }
    }
    lines.push_back(columns);

    auto footer = layout.footer ? footer_lines(view) : std::vector<std::string>{};
    std::size_t rows = SIZE_MAX;
    if (layout.height > 0) {
        std::size_t used = lines.size() + footer.size();
        rows = layout.height > used ? layout.height - used : 0;
    }
    if (layout.rows > 0) rows = std::min(rows, layout.rows);

    auto entries = sorted_entries(counts, view);
    if (entries.empty() && rows > 0) lines.push_back({fit(no_rows_text(counts, status))});
    for (std::size_t i = 0; i < entries.size() && i < rows; ++i) {
        lines.push_back({table_row(*entries[i], counts, status, view, layout.width)});
    }
    if (layout.height > 0) {
        while (lines.size() + footer.size() < layout.height) lines.push_back({});
    }
    for (const auto& text : footer) lines.push_back({fit(text), LineStyle::Footer});
    return lines;
}

std::string terminal_text(std::string_view text) {
    std::string out;
    out.reserve(text.size());
    for (std::size_t at = 0; at < text.size();) {
        char32_t code_point = 0;
        std::size_t length = exporters::decode_utf8(text, at, code_point);
        if (length == 0 || is_control(code_point)) {
            out += exporters::kReplacementCharacter;
            at += length == 0 ? 1 : length;
            continue;
        }
        out.append(text.substr(at, length));
        at += length;
    }
    return out;
}

std::size_t display_width(std::string_view text) {
    return static_cast<std::size_t>(std::count_if(
        text.begin(), text.end(), [](char c) { return !is_continuation(static_cast<unsigned char>(c)); }));
}

std::string fit_width(std::string_view text, std::size_t width) {
    std::size_t points = 0;
    for (std::size_t at = 0; at < text.size(); ++at) {
        if (is_continuation(static_cast<unsigned char>(text[at]))) continue;
        if (points == width) return std::string(text.substr(0, at));
        ++points;
    }
    return std::string(text);
}

std::string format_seconds(double seconds) {
    if (seconds >= 1000) return format_number(seconds, "%.0fs");
    if (seconds >= 100) return format_number(seconds, "%.1fs");
    if (seconds >= 1) return format_number(seconds, "%.2fs");
    return format_number(seconds, "%.3fs");
}

// ---- terminal ------------------------------------------------------------------------------

namespace {

constexpr std::string_view kEnterScreen = "\x1b[?1049h\x1b[?25l\x1b[H\x1b[2J";  // alternate screen, cursor hidden
constexpr std::string_view kLeaveScreen = "\x1b[0m\x1b[?25h\x1b[?1049l";        // attributes off, cursor shown
constexpr std::string_view kBold = "\x1b[1m";
constexpr std::string_view kReverse = "\x1b[7m";
constexpr std::string_view kUnderlineBold = "\x1b[1;4m";
constexpr std::string_view kUnderlineBoldOff = "\x1b[22;24m";
constexpr std::string_view kNormal = "\x1b[0m";

// Splits `text` at code points `begin` and `end`.
std::array<std::string, 3> split_at(const std::string& text, std::size_t begin, std::size_t end) {
    std::string before = fit_width(text, begin);
    std::string middle = fit_width(std::string_view(text).substr(before.size()), end - begin);
    return {before, middle, text.substr(before.size() + middle.size())};
}

std::string styled(const ScreenLine& line, std::size_t columns) {
    switch (line.style) {
        case LineStyle::Plain: return line.text;
        case LineStyle::Heading: return std::string(kBold) + line.text + std::string(kNormal);
        case LineStyle::Footer: return std::string(kReverse) + line.text + std::string(kNormal);
        case LineStyle::TableHeader: {
            std::size_t width = display_width(line.text);
            std::string padding(columns > width ? columns - width : 0, ' ');
            auto [before, middle, after] = split_at(line.text, line.highlight_begin, line.highlight_end);
            return std::string(kReverse) + before + std::string(kUnderlineBold) + middle +
                   std::string(kUnderlineBoldOff) + after + padding + std::string(kNormal);
        }
    }
    return line.text;
}

std::atomic<bool> g_resized{false};
std::atomic<bool> g_suspend{false};
struct sigaction g_previous_winch {};
struct sigaction g_previous_tstp {};
struct sigaction g_previous_cont {};

void on_resize(int) { g_resized.store(true); }
void on_suspend(int) { g_suspend.store(true); }

void install(int signal, void (*handler)(int), struct sigaction* previous) {
    struct sigaction action {};
    action.sa_handler = handler;
    sigemptyset(&action.sa_mask);
    action.sa_flags = 0;
    ::sigaction(signal, &action, previous);
}

}  // namespace

TerminalScreen::TerminalScreen(int input_fd, int output_fd) : input_fd_(input_fd), output_fd_(output_fd) { enter(); }

TerminalScreen::~TerminalScreen() { leave(); }

void TerminalScreen::suspend() { leave(); }

void TerminalScreen::resume() { enter(); }

void TerminalScreen::enter() {
    if (entered_) return;
    termios modes{};
    if (::isatty(input_fd_) && ::tcgetattr(input_fd_, &modes) == 0) {
        termios raw = modes;
        raw.c_lflag &= ~static_cast<tcflag_t>(ICANON | ECHO);
        raw.c_cc[VMIN] = 0;
        raw.c_cc[VTIME] = 0;
        if (::tcsetattr(input_fd_, TCSANOW, &raw) == 0) saved_modes_ = modes;
    }
    write_all(kEnterScreen);
    entered_ = true;
}

void TerminalScreen::leave() {
    if (!entered_) return;
    write_all(kLeaveScreen);
    if (saved_modes_) {
        ::tcsetattr(input_fd_, TCSANOW, &*saved_modes_);
        saved_modes_.reset();
    }
    entered_ = false;
}

void TerminalScreen::write_all(std::string_view bytes) const {
    while (!bytes.empty()) {
        ssize_t n = ::write(output_fd_, bytes.data(), bytes.size());
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return;
        bytes.remove_prefix(static_cast<std::size_t>(n));
    }
}

TerminalScreen::Size TerminalScreen::size() const {
    winsize window{};
    if (::ioctl(output_fd_, TIOCGWINSZ, &window) == 0 && window.ws_row > 0 && window.ws_col > 0) {
        return {window.ws_row, window.ws_col};
    }
    return {};
}

// Each line is placed and cleared on its own, so nothing scrolls and output that another program
// wrote to the terminal meanwhile is painted over.
void TerminalScreen::draw(const std::vector<ScreenLine>& lines) {
    auto [rows, columns] = size();
    std::string frame;
    for (std::size_t i = 0; i < lines.size() && i < rows; ++i) {
        frame += "\x1b[" + std::to_string(i + 1) + ";1H\x1b[2K";
        frame += styled(lines[i], columns);
    }
    if (lines.size() < rows) frame += "\x1b[" + std::to_string(lines.size() + 1) + ";1H\x1b[J";
    write_all(frame);
}

std::string TerminalScreen::read_keys() {
    std::string keys;
    if (!saved_modes_) return keys;
    char buf[64];
    for (;;) {
        ssize_t n = ::read(input_fd_, buf, sizeof(buf));
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;
        std::string_view chunk(buf, static_cast<std::size_t>(n));
        keys.append(chunk.substr(0, chunk.find('\x1b')));
    }
    return keys;
}

ScreenSignals::ScreenSignals() {
    g_resized.store(false);
    g_suspend.store(false);
    install(SIGWINCH, on_resize, &g_previous_winch);
    install(SIGTSTP, on_suspend, &g_previous_tstp);
    install(SIGCONT, on_resize, &g_previous_cont);
}

ScreenSignals::~ScreenSignals() {
    ::sigaction(SIGWINCH, &g_previous_winch, nullptr);
    ::sigaction(SIGTSTP, &g_previous_tstp, nullptr);
    ::sigaction(SIGCONT, &g_previous_cont, nullptr);
}

bool ScreenSignals::take_resized() { return g_resized.exchange(false); }

bool ScreenSignals::take_suspend() { return g_suspend.exchange(false); }

void ScreenSignals::stop_self() {
    struct sigaction handled {};
    install(SIGTSTP, SIG_DFL, &handled);
    ::raise(SIGTSTP);
    ::sigaction(SIGTSTP, &handled, nullptr);
}

}  // namespace pysample::sampler
