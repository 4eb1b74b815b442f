// Two profiles' functions side by side: how each one's share of the samples changed.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <map>
#include <string>
#include <vector>

#include "exporters/exporters.hpp"
#include "exporters/utf8.hpp"
#include "function_stats.hpp"

namespace pysample::exporters {
namespace {

// A function by name and file: its first line moves when the code above it changes.
using FunctionName = std::pair<std::string, std::string>;  // (file, name)

struct Shares {
    double own = 0;
    double total = 0;
};

std::map<FunctionName, Shares> shares_of(const Profile& profile) {
    auto table = detail::aggregate_functions(profile);
    std::map<FunctionName, Shares> shares;
    if (table.samples == 0) return shares;
    auto share = [&](std::uint64_t count) {
        return 100.0 * static_cast<double>(count) / static_cast<double>(table.samples);
    };
    for (const auto& function : table.functions) {
        auto& entry = shares[{function.key.filename, function.key.function}];
        entry.own += share(function.counts.own);
        entry.total = std::max(entry.total, share(function.counts.total));
    }
    return shares;
}

struct Row {
    FunctionName name;
    Shares base;
    Shares changed;
    double own_change() const { return changed.own - base.own; }
    double total_change() const { return changed.total - base.total; }
};

std::string signed_number(double value) {
    char text[32];
    std::snprintf(text, sizeof(text), "%+.2f", std::fabs(value) < 0.005 ? 0.0 : value);
    return text;
}

std::string percent_cell(double value) {
    char text[32];
    std::snprintf(text, sizeof(text), "%.2f%%", value);
    return text;
}

std::string pad_left(const std::string& text, std::size_t width) {
    return text.size() >= width ? text : std::string(width - text.size(), ' ') + text;
}

}  // namespace

void write_diff_table(const Profile& base, const Profile& changed, const WriteOptions& options, std::ostream& out) {
    auto before = shares_of(base);
    auto after = shares_of(changed);
    std::vector<Row> rows;
    for (const auto& [name, shares] : after)
        rows.push_back({name, before.count(name) ? before[name] : Shares{}, shares});
    for (const auto& [name, shares] : before) {
        if (!after.count(name)) rows.push_back({name, shares, {}});
    }
    // The largest change first, of either share, growth or loss.
    auto moved = [](const Row& row) { return std::max(std::fabs(row.own_change()), std::fabs(row.total_change())); };
    std::sort(rows.begin(), rows.end(), [&](const Row& a, const Row& b) {
        if (moved(a) != moved(b)) return moved(a) > moved(b);
        return a.name < b.name;
    });
    if (options.top > 0 && rows.size() > options.top) rows.resize(options.top);
    out << "Functions by the change of their share of the samples from the base (" << base.total_count()
        << " thread samples) to the new run (" << changed.total_count() << "), in percentage points;\n"
        << "own: running itself, total: anywhere on the stack. The largest change, of either, first.\n\n";
    out << pad_left("own base", 10) << pad_left("own new", 10) << pad_left("change", 9) << pad_left("total base", 12)
        << pad_left("total new", 11) << pad_left("change", 9) << "  function (file)\n";
    for (const Row& row : rows) {
        const auto& [file, name] = row.name;
        std::string function = escape_control_characters(name);
        if (file != "~") function += " (" + escape_control_characters(file) + ")";
        out << pad_left(percent_cell(row.base.own), 10) << pad_left(percent_cell(row.changed.own), 10)
            << pad_left(signed_number(row.own_change()), 9) << pad_left(percent_cell(row.base.total), 12)
            << pad_left(percent_cell(row.changed.total), 11) << pad_left(signed_number(row.total_change()), 9) << "  "
            << function << '\n';
    }
}

}  // namespace pysample::exporters
