// The hottest functions' source with each line's share of the samples in the margin.
#include <algorithm>
#include <cstdio>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "exporters/exporters.hpp"
#include "exporters/utf8.hpp"
#include "function_stats.hpp"

namespace pysample::exporters {
namespace {

constexpr std::size_t kDefaultFunctions = 10;
constexpr int kContextLines = 2;  // shown around sampled lines; longer stretches without samples are cut

using detail::FunctionKey;  // file, first line, name: as pstats keys a function

struct Counts {
    std::uint64_t own = 0;
    std::uint64_t total = 0;
};

struct FunctionLines {
    Counts counts;
    std::map<int, Counts> lines;
};

// Own samples go to the innermost frame read from the target; totals count each function, and
// each of its lines, once per sample however often it recurses.
std::map<FunctionKey, FunctionLines> aggregate_lines(const Profile& profile) {
    std::map<FunctionKey, FunctionLines> functions;
    std::set<FunctionKey> seen_functions;
    std::set<std::pair<FunctionKey, int>> seen_lines;
    for (const auto& stack : profile.stacks()) {
        seen_functions.clear();
        seen_lines.clear();
        const Frame* leaf = nullptr;
        for (FrameId id : stack.frames) {
            const Frame& frame = profile.frame(id);
            if (frame.synthetic) continue;
            leaf = &frame;
            FunctionKey key{frame.filename, frame.first_line, frame.function};
            auto& entry = functions[key];
            if (seen_functions.insert(key).second) entry.counts.total += stack.count;
            if (frame.line > 0 && seen_lines.emplace(key, frame.line).second)
                entry.lines[frame.line].total += stack.count;
        }
        if (leaf == nullptr) continue;
        auto& entry = functions[{leaf->filename, leaf->first_line, leaf->function}];
        entry.counts.own += stack.count;
        if (leaf->line > 0) entry.lines[leaf->line].own += stack.count;
    }
    return functions;
}

std::vector<std::string> split_lines(const std::string& text) {
    std::vector<std::string> lines;
    std::string line;
    std::istringstream in(text);
    while (std::getline(in, line)) {
        if (!line.empty() && line.back() == '\r') line.pop_back();
        lines.push_back(line);
    }
    return lines;
}

std::string percent(std::uint64_t count, std::uint64_t total) {
    if (count == 0 || total == 0) return "";
    char text[16];
    std::snprintf(text, sizeof text, "%.1f%%", 100.0 * static_cast<double>(count) / static_cast<double>(total));
    return text;
}

std::string padded(const std::string& text, std::size_t width) {
    return text.size() >= width ? text : std::string(width - text.size(), ' ') + text;
}

// Red for lines with at least a tenth of the samples, yellow for a hundredth.
const char* colour_of(std::uint64_t count, std::uint64_t total) {
    if (total == 0 || count * 10 >= total) return "\x1b[1;31m";
    if (count * 100 >= total) return "\x1b[33m";
    return "";
}

void write_function(const FunctionKey& key, const FunctionLines& lines, const Profile& profile,
                    const WriteOptions& options, std::ostream& out) {
    std::uint64_t samples = profile.total_count();
    out << escape_control_characters(key.function) << " (" << escape_control_characters(key.filename);
    if (key.line > 0) out << ":" << key.line;
    out << "): total " << percent(lines.counts.total, samples) << ", own "
        << (lines.counts.own > 0 ? percent(lines.counts.own, samples) : "0%") << "\n";
    auto source = profile.sources.find(key.filename);
    std::vector<std::string> text;
    if (source != profile.sources.end()) {
        if (source->second.state != SourceFile::State::Missing) text = split_lines(source->second.text);
        if (source->second.state != SourceFile::State::Read) {
            out << "  [" << escape_control_characters(source->second.why) << "]\n";
        }
    }
    if (lines.lines.empty()) {
        out << "  (no line numbers were recorded)\n\n";
        return;
    }
    int first = key.line > 0 ? std::min(key.line, lines.lines.begin()->first) : lines.lines.begin()->first;
    int last = lines.lines.rbegin()->first;
    auto near_samples = [&](int number) {
        if (number == first) return true;  // the def line
        auto after = lines.lines.lower_bound(number - kContextLines);
        return after != lines.lines.end() && after->first <= number + kContextLines;
    };
    out << "     own   total  line\n";
    bool cut = false;
    for (int number = first; number <= last + kContextLines; ++number) {
        if (number > last && static_cast<std::size_t>(number) > text.size()) break;
        if (!near_samples(number)) {
            if (!cut) out << "                     ...\n";
            cut = true;
            continue;
        }
        cut = false;
        auto it = lines.lines.find(number);
        Counts counts = it != lines.lines.end() ? it->second : Counts{};
        const char* colour = options.color && counts.total > 0 ? colour_of(counts.total, samples) : "";
        out << colour << padded(percent(counts.own, samples), 8) << padded(percent(counts.total, samples), 8)
            << (*colour != '\0' ? "\x1b[0m" : "") << padded(std::to_string(number), 6) << "  ";
        if (number >= 1 && static_cast<std::size_t>(number) <= text.size()) {
            out << escape_control_characters(valid_utf8(text[static_cast<std::size_t>(number) - 1]));
        }
        out << "\n";
    }
    out << "\n";
}

}  // namespace

void write_annotate(const Profile& profile, const WriteOptions& options, std::ostream& out) {
    auto functions = aggregate_lines(profile);
    std::vector<std::pair<const FunctionKey*, const FunctionLines*>> ranked;
    for (const auto& [key, lines] : functions) ranked.emplace_back(&key, &lines);
    std::stable_sort(ranked.begin(), ranked.end(), [](const auto& a, const auto& b) {
        if (a.second->counts.total != b.second->counts.total) return a.second->counts.total > b.second->counts.total;
        return a.second->counts.own > b.second->counts.own;
    });
    std::size_t shown = std::min(ranked.size(), options.top > 0 ? options.top : kDefaultFunctions);
    out << "pysample annotate: " << profile.total_count() << " samples, the " << shown << " function"
        << (shown == 1 ? "" : "s") << " with the largest total share of " << ranked.size() << "\n\n";
    for (std::size_t i = 0; i < shown; ++i) write_function(*ranked[i].first, *ranked[i].second, profile, options, out);
}

}  // namespace pysample::exporters
