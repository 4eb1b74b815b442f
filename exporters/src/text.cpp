// The table `python -m cProfile -s KEY` prints (pstats' print_stats), laid out the same way, with
// what a sampler knows in place of what it cannot: the first column counts the samples that saw
// the function (not calls, which a sampler does not see), and the per-call columns give each
// function's share of the samples instead. Times and names are those pstats prints for the
// .pstats file of the same run.

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
        case SortKey::Ncalls: return "sample count";
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

std::string share(std::uint64_t part, std::uint64_t whole) {
    char buffer[64];
    std::snprintf(buffer, sizeof buffer, "%7.2f%%",
                  whole == 0 ? 0.0 : 100.0 * static_cast<double>(part) / static_cast<double>(whole));
    return buffer;
}

std::string header() {
    return right_aligned("samples", 9) + " " + right_aligned("tottime", 8) + " " + right_aligned("own%", 8) + " " +
           right_aligned("cumtime", 8) + " " + right_aligned("total%", 8) + " filename:lineno(function)\n";
}

std::string row(const FunctionStats& function, double interval, std::uint64_t samples) {
    const auto& counts = function.counts;
    return right_aligned(std::to_string(counts.total), 9) + " " + f8(static_cast<double>(counts.own) * interval) + " " +
           share(counts.own, samples) + " " + f8(static_cast<double>(counts.total) * interval) + " " +
           share(counts.total, samples) + " " + printable(detail::function_label(function.key)) + "\n";
}

}  // namespace

// Threads are merged, as cProfile does.
void write_text(const Profile& profile, const WriteOptions& options, std::ostream& out) {
    const detail::FunctionTable table = detail::aggregate_functions(profile);
    const double interval = profile.info.interval_s();
    out << summary_line(table.samples, interval, profile.info);
    std::vector<const FunctionStats*> rows = sorted_rows(table.functions, options.sort);
    if (rows.empty()) {
        out << "\n";
        return;
    }
    out << "   samples: how many samples saw the function (a sampler sees no calls); own% and total%: its share of "
           "them, running itself and anywhere on the stack\n\n";

    out << "   Ordered by: " << sort_description(options.sort) << "\n";
    if (options.top > 0 && options.top < rows.size()) {
        out << "   List reduced from " << rows.size() << " to " << options.top << " due to restriction <" << options.top
            << ">\n";
        rows.resize(options.top);
    }
    out << "\n" << header();
    for (const FunctionStats* function : rows) out << row(*function, interval, table.samples);
    out << "\n\n";
}

}  // namespace pysample::exporters
