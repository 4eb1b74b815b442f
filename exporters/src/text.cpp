// The table `python -m cProfile -s KEY` prints (pstats' print_stats), laid out the same way so it
// reads and parses like one; the first line counts samples instead of function calls. The numbers
// are those of the pstats exporter: ncalls is the number of samples that saw the function.

#include <algorithm>
#include <cstdio>
#include <string>
#include <tuple>
#include <vector>

#include "exporters/exporters.hpp"
#include "exporters/utf8.hpp"
#include "function_stats.hpp"

namespace pysample::exporters {
namespace {

using detail::FunctionKey;
using detail::FunctionStats;

// pstats' f8.
std::string f8(double value) {
    char buffer[64];
    std::snprintf(buffer, sizeof buffer, "%8.3f", value);
    return buffer;
}

std::string right_aligned(const std::string& text, std::size_t width) {
    return text.size() >= width ? text : std::string(width - text.size(), ' ') + text;
}

// One row per line: control characters and line separators from the target are spelled out.
std::string printable(std::string_view text) { return escape_control_characters(text); }

std::string_view sort_description(SortKey key) {
    switch (key) {
        case SortKey::Tottime: return "internal time";
        case SortKey::Cumtime: return "cumulative time";
        case SortKey::Ncalls: return "call count";
        case SortKey::Name: return "function name";
    }
    return "internal time";
}

// Times are samples times a constant interval, so sample counts order rows exactly as the printed
// times do; ties fall back to the function's key so the order never depends on the run.
bool comes_before(const FunctionStats& a, const FunctionStats& b, SortKey key) {
    const auto& x = a.counts;
    const auto& y = b.counts;
    switch (key) {
        case SortKey::Tottime: return std::tie(y.own, y.total, a.key) < std::tie(x.own, x.total, b.key);
        case SortKey::Cumtime:
        case SortKey::Ncalls: return std::tie(y.total, y.own, a.key) < std::tie(x.total, x.own, b.key);
        case SortKey::Name:
            return std::tie(a.key.function, a.key.filename, a.key.line) <
                   std::tie(b.key.function, b.key.filename, b.key.line);
    }
    return false;
}

std::vector<const FunctionStats*> sorted_rows(const std::vector<FunctionStats>& functions, SortKey key) {
    std::vector<const FunctionStats*> rows;
    rows.reserve(functions.size());
    for (const FunctionStats& function : functions) rows.push_back(&function);
    std::sort(rows.begin(), rows.end(),
              [key](const FunctionStats* a, const FunctionStats* b) { return comes_before(*a, *b, key); });
    return rows;
}

std::string run_description(const RunInfo& info) {
    std::string command = printable(info.command_line);
    if (info.pid == 0) return command.empty() ? "" : " (" + command + ")";
    std::string text = " (pid " + std::to_string(info.pid);
    if (!command.empty()) text += ": " + command;
    return text + ")";
}

std::string summary_line(std::uint64_t samples, double interval, const RunInfo& info) {
    char seconds[64];
    std::snprintf(seconds, sizeof seconds, "%.3f", static_cast<double>(samples) * interval);
    return std::string(9, ' ') + std::to_string(samples) + " samples in " + seconds + " seconds" +
           run_description(info) + "\n";
}

std::string row(const FunctionStats& function, double interval) {
    const std::uint64_t samples = function.counts.total;
    const double tottime = static_cast<double>(function.counts.own) * interval;
    const double cumtime = static_cast<double>(samples) * interval;
    const double calls = static_cast<double>(samples);
    return right_aligned(std::to_string(samples), 9) + " " + f8(tottime) + " " + f8(tottime / calls) + " " +
           f8(cumtime) + " " + f8(cumtime / calls) + " " + printable(detail::function_label(function.key)) + "\n";
}

}  // namespace

// Threads are merged, as cProfile does.
void write_text(const Profile& profile, const WriteOptions& options, std::ostream& out) {
    const detail::FunctionTable table = detail::aggregate_functions(profile);
    const double interval = profile.info.interval_s();
    out << summary_line(table.samples, interval, profile.info) << "\n";
    std::vector<const FunctionStats*> rows = sorted_rows(table.functions, options.sort);
    if (rows.empty()) return;

    out << "   Ordered by: " << sort_description(options.sort) << "\n";
    if (options.top > 0 && options.top < rows.size()) {
        out << "   List reduced from " << rows.size() << " to " << options.top << " due to restriction <" << options.top
            << ">\n";
        rows.resize(options.top);
    }
    out << "\n   ncalls  tottime  percall  cumtime  percall filename:lineno(function)\n";
    for (const FunctionStats* function : rows) out << row(*function, interval);
    out << "\n\n";
}

}  // namespace pysample::exporters
