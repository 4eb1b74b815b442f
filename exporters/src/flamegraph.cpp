#include <algorithm>
#include <array>
#include <cmath>
#include <cstdio>
#include <deque>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "exporters/exporters.hpp"
#include "exporters/utf8.hpp"
#include "flamegraph_script.hpp"

namespace pysample::exporters {
namespace {

constexpr double kWidth = 1200;  // of the frame area, in pixels
constexpr double kMargin = 10;
constexpr double kRow = 16;
constexpr double kFramesTop = 60;
constexpr double kFooter = 30;
constexpr double kCharWidth = 7.3;  // 12px monospace, slightly generous so labels never overflow
constexpr std::size_t kTitleCommandChars = 56;

// Frames under 1/2000 of all samples (0.6 px of the 1200 px width) are not drawn one by one: a run
// of such adjacent siblings becomes one grey "[N small frames]" box when the run together reaches
// that width, and is left out otherwise; their descendants are left out either way. That bounds
// the drawn frames to about 2000 per row however many distinct stacks there are, so a profile with
// 100k stacks stays a few MB; zooming still shows everything down to 0.05% of the run.
constexpr std::uint64_t kMinFrameDivisor = 2000;

constexpr const char* kRootColour = "#d6d6dc";
constexpr const char* kThreadColour = "#5d6d8c";
constexpr const char* kMergedColour = "#e4e4e4";
constexpr const char* kNoFileColour = "#cfcfcf";
constexpr std::string_view kSeparator = " \xC2\xB7 ";  // " · "

// ---- Text from the target: valid UTF-8 without control characters, then escaped for XML. ----

bool is_control(char32_t c) { return c < 0x20 || (c >= 0x7F && c < 0xA0); }

// Invalid bytes become U+FFFD, control characters are spelled "\xNN" so they show as text.
std::string readable(std::string_view raw) {
    std::string out;
    out.reserve(raw.size());
    for (std::size_t at = 0; at < raw.size();) {
        char32_t c = 0;
        std::size_t length = decode_utf8(raw, at, c);
        if (length == 0) {
            out += kReplacementCharacter;
            ++at;
            continue;
        }
        if (is_control(c)) {
            char spelled[8];
            std::snprintf(spelled, sizeof spelled, "\\x%02x", static_cast<unsigned>(c));
            out += spelled;
        } else if (c == 0xFFFE || c == 0xFFFF) {  // not characters XML allows
            out += kReplacementCharacter;
        } else {
            out.append(raw.substr(at, length));
        }
        at += length;
    }
    return out;
}

std::string escape_xml(std::string_view text) {
    std::string out;
    out.reserve(text.size());
    for (char c : text) {
        switch (c) {
            case '<': out += "&lt;"; break;
            case '>': out += "&gt;"; break;
            case '&': out += "&amp;"; break;
            case '"': out += "&quot;"; break;
            case '\'': out += "&apos;"; break;
            default: out += c;
        }
    }
    return out;
}

bool starts_code_point(char c) { return (static_cast<unsigned char>(c) & 0xC0) != 0x80; }

std::size_t count_code_points(std::string_view text) {
    return static_cast<std::size_t>(std::count_if(text.begin(), text.end(), starts_code_point));
}

// The byte offset where code point number `index` starts (text.size() past the end).
std::size_t code_point_offset(std::string_view text, std::size_t index) {
    std::size_t seen = 0;
    for (std::size_t at = 0; at < text.size(); ++at) {
        if (!starts_code_point(text[at])) continue;
        if (seen++ == index) return at;
    }
    return text.size();
}

// The same rule the script applies after a zoom: what fits in `width` pixels, cut with "..".
std::string fit_label(std::string_view text, double width) {
    double room = std::max(0.0, std::floor((width - 6) / kCharWidth));
    auto chars = static_cast<std::size_t>(room);
    if (count_code_points(text) <= chars) return std::string(text);
    if (chars < 5) return "";  // "fu.." says nothing
    return std::string(text.substr(0, code_point_offset(text, chars - 2))) + "..";
}

// "f (/a/b/c.py:3)" is shown as "f (c.py:3)" inside the box; the script does the same.
std::string short_label(std::string_view label) {
    if (label.empty() || label.back() != ')') return std::string(label);
    std::size_t open = label.rfind('(');
    if (open == std::string_view::npos) return std::string(label);
    std::string_view inside = label.substr(open + 1, label.size() - open - 2);
    std::size_t slash = inside.rfind('/');
    if (inside.find(')') != std::string_view::npos || slash == std::string_view::npos) return std::string(label);
    return std::string(label.substr(0, open + 1)) + std::string(inside.substr(slash + 1)) + ")";
}

// Keeps the start and the end (where the script's name usually is) of a long command line.
std::string shorten_middle(const std::string& text, std::size_t max_chars) {
    std::size_t chars = count_code_points(text);
    if (chars <= max_chars) return text;
    std::size_t head = max_chars / 3;
    std::size_t tail = max_chars - head - 1;
    return text.substr(0, code_point_offset(text, head)) + "\xE2\x80\xA6" +
           text.substr(code_point_offset(text, chars - tail));
}

// ---- Numbers ----

std::string fixed(double value, int decimals) {
    char text[48];
    std::snprintf(text, sizeof text, "%.*f", decimals, value);
    return text;
}

// Up to `decimals` decimals without trailing zeros: 376, 376.5, 123.45.
std::string number(double value, int decimals = 2) {
    std::string out = fixed(value, decimals);
    if (out.find('.') != std::string::npos) {
        out.erase(out.find_last_not_of('0') + 1);
        if (out.back() == '.') out.pop_back();
    }
    return out == "-0" ? "0" : out;
}

std::string percent(std::uint64_t part, std::uint64_t whole) {
    return number(whole == 0 ? 0.0 : 100.0 * static_cast<double>(part) / static_cast<double>(whole)) + "%";
}

// ---- Colours: the hue follows the file, so a module keeps its colour across runs ----

std::uint32_t stable_hash(std::string_view text) {
    std::uint32_t h = 2166136261u;  // FNV-1a, then a finalizer so that similar names spread out
    for (unsigned char c : text) h = (h ^ c) * 16777619u;
    h ^= h >> 16;
    h *= 0x85EBCA6Bu;
    h ^= h >> 13;
    h *= 0xC2B2AE35u;
    h ^= h >> 16;
    return h;
}

std::string hex_colour_from_hsl(double hue, double saturation, double lightness) {
    double chroma = (1 - std::fabs(2 * lightness - 1)) * saturation;
    double sector = hue / 60.0;
    double second = chroma * (1 - std::fabs(std::fmod(sector, 2.0) - 1));
    std::array<double, 3> rgb{};
    switch (static_cast<int>(sector) % 6) {
        case 0: rgb = {chroma, second, 0}; break;
        case 1: rgb = {second, chroma, 0}; break;
        case 2: rgb = {0, chroma, second}; break;
        case 3: rgb = {0, second, chroma}; break;
        case 4: rgb = {second, 0, chroma}; break;
        default: rgb = {chroma, 0, second}; break;
    }
    double base = lightness - chroma / 2;
    char text[8];
    auto channel = [&](double v) { return static_cast<unsigned>(std::lround((v + base) * 255)); };
    std::snprintf(text, sizeof text, "#%02x%02x%02x", channel(rgb[0]), channel(rgb[1]), channel(rgb[2]));
    return text;
}

std::string code_colour(const Frame& frame) {
    if (frame.filename.empty()) return kNoFileColour;
    // Hues from 345 round to 270: the magenta between is kept for search matches.
    double hue = static_cast<double>((stable_hash(frame.filename) % 285 + 345) % 360);
    double lightness = 0.70 + (static_cast<double>(stable_hash(frame.function) % 9) - 4) * 0.02;
    return hex_colour_from_hsl(hue, 0.62, lightness);
}

// ---- The frame tree ----

enum class Kind { Root, Thread, Code, Merged };

struct Label {
    std::string text;  // readable, not yet escaped
    Kind kind = Kind::Code;
    std::string colour;
};

// Each distinct text of each kind once. The index refers to the labels' own text, which a deque
// never moves: the profile's largest, at the end of a run, is not held twice.
class Labels {
public:
    std::uint32_t add(std::string text, Kind kind, std::string colour) {
        auto& ids = ids_[static_cast<std::size_t>(kind)];
        if (auto it = ids.find(text); it != ids.end()) return it->second;
        auto id = static_cast<std::uint32_t>(labels_.size());
        labels_.push_back({std::move(text), kind, std::move(colour)});
        ids.emplace(labels_.back().text, id);
        return id;
    }
    const Label& operator[](std::uint32_t id) const { return labels_[id]; }
    std::size_t size() const { return labels_.size(); }

private:
    std::deque<Label> labels_;
    std::array<std::unordered_map<std::string_view, std::uint32_t>, 4> ids_;
};

// The profile's stacks as label ids, root first, read in place rather than copied: the tree is
// built when the run ends, when the profile is at its largest.
class LabelPaths {
public:
    LabelPaths(const Profile& profile, std::vector<std::uint32_t> frame_labels,
               std::vector<std::uint32_t> thread_labels, bool thread_roots)
        : profile_(profile),
          frame_labels_(std::move(frame_labels)),
          thread_labels_(std::move(thread_labels)),
          thread_roots_(thread_roots) {}
    std::size_t count() const { return profile_.stacks().size(); }
    std::uint64_t samples(std::size_t path) const { return profile_.stacks()[path].count; }
    std::size_t length(std::size_t path) const {
        return profile_.stacks()[path].frames.size() + (thread_roots_ ? 1 : 0);
    }
    std::uint32_t label(std::size_t path, std::size_t depth) const {
        const StackCount& stack = profile_.stacks()[path];
        if (thread_roots_) {
            if (depth == 0) return thread_labels_[stack.thread];
            --depth;
        }
        return frame_labels_[stack.frames[depth]];
    }

private:
    const Profile& profile_;
    std::vector<std::uint32_t> frame_labels_;
    std::vector<std::uint32_t> thread_labels_;
    bool thread_roots_;
};

// Children are chained in the order they were added (alphabetical by label).
struct Node {
    std::uint32_t label = 0;
    std::uint32_t first_child = 0;  // 0: none (the root is never a child)
    std::uint32_t next_sibling = 0;
    std::uint32_t last_child = 0;
    std::uint64_t count = 0;
};

// Stacks merged into one tree by label, so frames that print the same (lines of one function with
// line numbers off, the same code on several threads) share a node. The paths are sorted
// alphabetically first: each one then shares its prefix with the previous one, children are
// created in alphabetical order (like flamegraph.pl, so a profile always draws the same picture),
// and no lookup table is needed.
class FlameTree {
public:
    FlameTree(std::uint32_t root_label, const LabelPaths& paths, const Labels& labels) : nodes_{{root_label}} {
        auto order = sorted_alphabetically(paths, labels);
        std::vector<std::uint32_t> open{0};  // the nodes along the current path, root first
        for (std::size_t i = 0; i < order.size(); ++i) {
            std::size_t path = order[i];
            std::size_t shared = i > 0 ? common_prefix(paths, order[i - 1], path) : 0;
            open.resize(shared + 1);
            for (std::size_t depth = shared; depth < paths.length(path); ++depth) {
                open.push_back(add_child(open.back(), paths.label(path, depth)));
            }
            for (std::uint32_t node : open) nodes_[node].count += paths.samples(path);
        }
    }
    const Node& node(std::uint32_t index) const { return nodes_[index]; }
    std::size_t size() const { return nodes_.size(); }
    std::uint64_t total() const { return nodes_[0].count; }

private:
    static std::vector<std::uint32_t> sorted_alphabetically(const LabelPaths& paths, const Labels& labels) {
        std::vector<std::uint32_t> by_text(labels.size());
        for (std::uint32_t id = 0; id < by_text.size(); ++id) by_text[id] = id;
        std::sort(by_text.begin(), by_text.end(), [&](std::uint32_t a, std::uint32_t b) {
            return labels[a].text != labels[b].text ? labels[a].text < labels[b].text : a < b;
        });
        std::vector<std::uint32_t> rank(labels.size());
        for (std::uint32_t position = 0; position < by_text.size(); ++position) rank[by_text[position]] = position;
        std::vector<std::uint32_t> order(paths.count());
        for (std::uint32_t path = 0; path < order.size(); ++path) order[path] = path;
        std::sort(order.begin(), order.end(), [&](std::uint32_t a, std::uint32_t b) {
            std::size_t shorter = std::min(paths.length(a), paths.length(b));
            for (std::size_t depth = 0; depth < shorter; ++depth) {
                auto x = rank[paths.label(a, depth)];
                auto y = rank[paths.label(b, depth)];
                if (x != y) return x < y;
            }
            return paths.length(a) < paths.length(b);
        });
        return order;
    }

    static std::size_t common_prefix(const LabelPaths& paths, std::size_t a, std::size_t b) {
        std::size_t length = 0;
        while (length < paths.length(a) && length < paths.length(b) &&
               paths.label(a, length) == paths.label(b, length)) {
            ++length;
        }
        return length;
    }

    std::uint32_t add_child(std::uint32_t parent, std::uint32_t label) {
        auto index = static_cast<std::uint32_t>(nodes_.size());
        nodes_.push_back({label});
        Node& up = nodes_[parent];
        if (up.first_child == 0) {
            up.first_child = index;
        } else {
            nodes_[up.last_child].next_sibling = index;
        }
        up.last_child = index;
        return index;
    }

    std::vector<Node> nodes_;
};

FlameTree build_tree(const Profile& profile, const WriteOptions& options, Labels& labels) {
    std::uint32_t root = labels.add("all", Kind::Root, kRootColour);
    std::vector<std::uint32_t> frame_labels;
    frame_labels.reserve(profile.frames().size());
    for (const Frame& frame : profile.frames()) {
        frame_labels.push_back(
            labels.add(readable(frame_label(frame, options.line_numbers)), Kind::Code, code_colour(frame)));
    }
    std::vector<std::uint32_t> thread_labels;
    for (const ThreadInfo& thread : profile.threads()) {
        thread_labels.push_back(labels.add(readable(thread_label(thread)), Kind::Thread, kThreadColour));
    }
    LabelPaths paths(profile, std::move(frame_labels), std::move(thread_labels), options.thread_roots);
    return FlameTree(root, paths, labels);
}

// ---- Layout: which frames are drawn, where, in depth-first order with the root first ----

struct DrawnFrame {
    std::uint32_t label = 0;
    std::uint32_t merged = 0;  // > 0: a box standing for this many small sibling frames
    std::size_t depth = 0;
    std::uint64_t start = 0;  // first sample, counting from the left edge
    std::uint64_t count = 0;
    std::uint32_t node = 0;  // in the FlameTree (not for merged boxes)
};

class Layout {
public:
    explicit Layout(const FlameTree& tree)
        : tree_(tree), min_count_(std::max<std::uint64_t>(1, tree.total() / kMinFrameDivisor)) {
        visit(0, 0, 0);
    }
    const std::vector<DrawnFrame>& frames() const { return frames_; }
    std::size_t max_depth() const { return max_depth_; }

private:
    struct SmallRun {
        std::uint64_t start = 0, count = 0;
        std::uint32_t frames = 0;
    };

    void visit(std::uint32_t index, std::size_t depth, std::uint64_t start) {
        const Node& node = tree_.node(index);
        frames_.push_back({node.label, 0, depth, start, node.count, index});
        max_depth_ = std::max(max_depth_, depth);
        SmallRun run;
        std::uint64_t offset = start;
        for (std::uint32_t child = node.first_child; child != 0; child = tree_.node(child).next_sibling) {
            std::uint64_t count = tree_.node(child).count;
            if (count >= min_count_) {
                flush(run, depth + 1);
                visit(child, depth + 1, offset);
            } else {
                if (run.frames == 0) run.start = offset;
                run.count += count;
                ++run.frames;
            }
            offset += count;
        }
        flush(run, depth + 1);
    }

    void flush(SmallRun& run, std::size_t depth) {
        if (run.frames > 1 && run.count >= min_count_) {
            frames_.push_back({0, run.frames, depth, run.start, run.count});
            max_depth_ = std::max(max_depth_, depth);
        }
        run = {};
    }

    const FlameTree& tree_;
    std::uint64_t min_count_;
    std::vector<DrawnFrame> frames_;
    std::size_t max_depth_ = 0;
};

// ---- Differential: each frame's share of the samples, in the base and in the profile drawn ----

// Frames whose share changed by less than this (in percentage points), or by less than sampling
// alone may make it vary (kNoiseDeviations standard deviations of the difference of two shares
// measured by sampling), are white: unchanged.
constexpr double kUnchangedPoints = 0.05;
constexpr double kNoiseDeviations = 3;
constexpr std::size_t kMaxVanishedListed = 12;

class Difference {
public:
    Difference(const FlameTree& changed, const FlameTree& base, const Labels& labels)
        : changed_(changed), base_(base), labels_(labels), base_counts_(changed.size(), 0) {
        match(0, 0, {}, {});
        std::sort(vanished_.begin(), vanished_.end(), [](const auto& a, const auto& b) { return a.count > b.count; });
    }

    // Percentage points of the samples the node gained (< 0: lost) from the base to the profile drawn.
    double change(std::uint32_t node) const {
        return share(changed_.node(node).count, changed_.total()) - base_share(node);
    }
    double base_share(std::uint32_t node) const { return share(base_counts_[node], base_.total()); }
    // Whether the change is more than sampling explains.
    bool significant(std::uint32_t node) const {
        double before = base_share(node) / 100;
        double after = new_share(node) / 100;
        auto variance = [](double p, std::uint64_t n) { return n == 0 ? 0.0 : p * (1 - p) / static_cast<double>(n); };
        double noise =
            100 * kNoiseDeviations * std::sqrt(variance(before, base_.total()) + variance(after, changed_.total()));
        return std::fabs(change(node)) >= std::max(kUnchangedPoints, noise);
    }
    double new_share(std::uint32_t node) const { return share(changed_.node(node).count, changed_.total()); }
    struct Vanished {
        std::string path;   // the frames' labels, root first
        std::string shown;  // the same with file names only
        std::uint64_t count = 0;
    };
    const std::vector<Vanished>& vanished() const { return vanished_; }
    std::uint64_t base_total() const { return base_.total(); }

private:
    static double share(std::uint64_t part, std::uint64_t whole) {
        return whole == 0 ? 0 : 100.0 * static_cast<double>(part) / static_cast<double>(whole);
    }

    // Walks both trees together; the base's children with no counterpart are vanished stacks.
    void match(std::uint32_t changed, std::uint32_t base, const std::string& path, const std::string& shown) {
        base_counts_[changed] = base_.node(base).count;
        for (std::uint32_t child = base_.node(base).first_child; child != 0; child = base_.node(child).next_sibling) {
            std::uint32_t label = base_.node(child).label;
            std::uint32_t counterpart = 0;
            for (std::uint32_t c = changed_.node(changed).first_child; c != 0; c = changed_.node(c).next_sibling) {
                if (changed_.node(c).label == label) {
                    counterpart = c;
                    break;
                }
            }
            const std::string& text = labels_[label].text;
            std::string below = path.empty() ? text : path + ";" + text;
            std::string shown_below = shown.empty() ? short_label(text) : shown + ";" + short_label(text);
            if (counterpart == 0) {
                vanished_.push_back({below, shown_below, base_.node(child).count});
            } else {
                match(counterpart, child, below, shown_below);
            }
        }
    }

    const FlameTree& changed_;
    const FlameTree& base_;
    const Labels& labels_;
    std::vector<std::uint64_t> base_counts_;  // by node of the profile drawn
    std::vector<Vanished> vanished_;
};

// Red where the share grew, blue where it shrank, deeper for larger changes (up to the largest
// one drawn), white where it is unchanged.
std::string change_colour(double points, double largest, bool significant) {
    if (!significant || largest <= 0) return "#ffffff";
    double strength = 0.15 + 0.85 * std::min(1.0, std::fabs(points) / largest);
    auto faded = static_cast<int>(std::lround(255 * (1 - 0.8 * strength)));
    char colour[8];
    if (points > 0) {
        std::snprintf(colour, sizeof(colour), "#ff%02x%02x", faded, faded);
    } else {
        std::snprintf(colour, sizeof(colour), "#%02x%02xff", faded, faded);
    }
    return colour;
}

std::string signed_points(double points) {
    return (points >= 0 ? "+" : "\xE2\x88\x92") + fixed(std::fabs(points), 2) + " points";
}

// ---- Output ----

struct Geometry {
    std::size_t max_depth = 0;
    bool reverse = false;
    std::size_t notes = 0;  // lines under the frames (a differential graph's vanished stacks)

    double row_y(std::size_t depth) const {
        std::size_t row = reverse ? depth : max_depth - depth;
        return kFramesTop + static_cast<double>(row) * kRow;
    }
    double notes_y() const { return kFramesTop + static_cast<double>(max_depth + 1) * kRow; }
    double height() const { return notes_y() + static_cast<double>(notes) * kRow + kFooter; }
    double width() const { return kWidth + 2 * kMargin; }
};

// The samples taken and the thread samples drawn: in CPU time they differ (a thread counts for the
// CPU it used, several threads may run in one sample), which the title says.
std::string title_text(const RunInfo& info, std::uint64_t thread_samples) {
    std::string command = shorten_middle(readable(info.command_line), kTitleCommandChars);
    std::string pid = info.pid > 0 ? "pid " + std::to_string(info.pid) : "";
    std::string who = command.empty() ? pid : pid.empty() ? command : command + " (" + pid + ")";
    std::string text = (who.empty() ? "" : who + ": ") + std::to_string(info.samples) + " samples in " +
                       fixed(info.duration_s, 1) + " s at " + number(info.rate_hz) + " Hz";
    text += "; " + std::to_string(thread_samples) + " thread samples";
    if (!info.counting.empty()) text += " (" + readable(info.counting) + ")";
    return text;
}

std::string subtitle_text(const RunInfo& info, const WriteOptions& options) {
    std::string text = "Python " + (info.python_version.empty() ? "version unknown" : readable(info.python_version));
    auto add = [&](const std::string& part) { text.append(kSeparator).append(part); };
    add(std::to_string(info.errors) + (info.errors == 1 ? " error (" : " errors (") +
        percent(info.errors, info.samples) + " of samples)");
    if (!info.start_time.empty()) add("started " + readable(info.start_time));
    if (!options.version.empty()) add("pysample " + readable(options.version));
    return text;
}

void write_button(std::ostream& out, const char* id, const char* label, const char* tip, double x, double width,
                  bool enabled) {
    out << "<g id=\"" << id << "\" class=\"btn" << (enabled ? "" : " off") << "\"><title>" << tip
        << "</title><rect x=\"" << number(x) << "\" y=\"10\" width=\"" << number(width)
        << "\" height=\"22\" rx=\"4\"/><text x=\"" << number(x + width / 2) << "\" y=\"25\">" << label
        << "</text></g>\n";
}

std::string diff_title_text(const WriteOptions& options, std::uint64_t thread_samples, std::uint64_t base_samples) {
    return "Differential flame graph" + (options.diff_names.empty() ? "" : " of " + readable(options.diff_names)) +
           ": " + std::to_string(thread_samples) + " thread samples, " + std::to_string(base_samples) + " in the base";
}

std::string diff_subtitle_text(double largest) {
    return "Sized by the new run; colour: the change of each frame's share of the samples, red: grew, blue: shrank "
           "(deepest " +
           fixed(largest, 2) + " points), white: the same or within sampling noise";
}

void write_header(std::ostream& out, const Profile& profile, const Geometry& geometry, const std::string& title,
                  const std::string& subtitle) {
    out << "<?xml version=\"1.0\" encoding=\"UTF-8\" standalone=\"no\"?>\n"
        << "<svg version=\"1.1\" xmlns=\"http://www.w3.org/2000/svg\" width=\"" << number(geometry.width())
        << "\" height=\"" << number(geometry.height()) << "\" viewBox=\"0 0 " << number(geometry.width()) << " "
        << number(geometry.height()) << "\">\n"
        << "<title>pysample: " << escape_xml(title) << "</title>\n"
        << "<style>" << flamegraph_style() << "</style>\n"
        << "<rect width=\"100%\" height=\"100%\" fill=\"#f8f8fa\"/>\n"
        << "<g><title>" << escape_xml(readable(profile.info.command_line)) << "</title><text id=\"title\" x=\""
        << number(kMargin) << "\" y=\"26\">" << escape_xml(title) << "</text></g>\n"
        << "<text id=\"sub\" x=\"" << number(kMargin) << "\" y=\"46\">" << escape_xml(subtitle) << "</text>\n";
    double right = kMargin + kWidth;
    write_button(out, "search", "Search", "Search frames (Ctrl-F or /)", right - 70, 70, true);
    write_button(out, "clear", "Clear search", "Clear the search (Esc)", right - 170, 92, false);
    write_button(out, "zoom", "Reset zoom", "Show the whole profile again (Esc)", right - 262, 84, false);
}

std::string merged_label(const DrawnFrame& frame) { return "[" + std::to_string(frame.merged) + " small frames]"; }

// "label&#10;N samples, P%": the script reads the label and N back from the first two lines.
std::string frame_title(const DrawnFrame& frame, const Label& label, std::uint64_t total,
                        const Difference* difference) {
    std::string title = escape_xml(frame.merged > 0 ? merged_label(frame) : label.text);
    title += "&#10;" + std::to_string(frame.count) + " samples, " + percent(frame.count, total);
    if (frame.merged > 0) title += "&#10;each under " + percent(1, kMinFrameDivisor) + " of all samples";
    if (difference != nullptr && frame.merged == 0) {
        title += "&#10;" + fixed(difference->base_share(frame.node), 2) + "% in the base, " +
                 fixed(difference->new_share(frame.node), 2) +
                 "% now: " + signed_points(difference->change(frame.node));
        if (!difference->significant(frame.node)) title += ", within sampling noise";
    }
    return title;
}

std::string shown_label(const DrawnFrame& frame, const Label& label) {
    if (frame.merged > 0) return merged_label(frame);
    return label.kind == Kind::Thread ? label.text : short_label(label.text);
}

const char* frame_class(const DrawnFrame& frame, const Label& label) {
    if (frame.merged > 0) return " class=\"m\"";
    return label.kind == Kind::Thread ? " class=\"t\"" : "";
}

void write_frame(std::ostream& out, const DrawnFrame& frame, const Label& label, const Geometry& geometry,
                 std::uint64_t total, const Difference* difference, double largest) {
    double scale = total == 0 ? 0 : kWidth / static_cast<double>(total);
    double x = kMargin + static_cast<double>(frame.start) * scale;
    double width = total == 0 ? kWidth : static_cast<double>(frame.count) * scale;
    double y = geometry.row_y(frame.depth);
    std::string colour = frame.merged > 0 ? kMergedColour : label.colour;
    if (difference != nullptr && frame.merged == 0) {
        colour = change_colour(difference->change(frame.node), largest, difference->significant(frame.node));
    }
    out << "<g" << frame_class(frame, label) << " data-o=\"" << frame.start << "\"><title>"
        << frame_title(frame, label, total, difference) << "</title><rect x=\"" << number(x) << "\" y=\"" << number(y)
        << "\" width=\"" << number(width) << "\" height=\"" << number(kRow - 1) << "\" rx=\"2\" fill=\"" << colour
        << (difference != nullptr ? "\" stroke=\"#c4c4cc\" stroke-width=\"0.5" : "") << "\"/><text x=\""
        << number(x + 3) << "\" y=\"" << number(y + 11.5) << "\">"
        << escape_xml(fit_label(shown_label(frame, label), width)) << "</text></g>\n";
}

// The base's stacks that the profile drawn does not have, largest first.
void write_vanished(std::ostream& out, const Difference& difference, const Geometry& geometry) {
    const auto& vanished = difference.vanished();
    if (vanished.empty()) return;
    out << "<g id=\"vanished\">\n";
    double y = geometry.notes_y() + kRow - 4;
    out << "<text x=\"" << number(kMargin) << "\" y=\"" << number(y) << "\">Gone since the base (" << vanished.size()
        << (vanished.size() == 1 ? " stack" : " stacks") << "):</text>\n";
    for (std::size_t i = 0; i < vanished.size() && i < kMaxVanishedListed; ++i) {
        y += kRow;
        const auto& gone = vanished[i];
        out << "<text class=\"gone\" x=\"" << number(kMargin) << "\" y=\"" << number(y) << "\"><title>"
            << escape_xml(gone.path) << "</title>" << percent(gone.count, difference.base_total())
            << " of the base: " << escape_xml(shorten_middle(gone.shown, 150)) << "</text>\n";
    }
    if (vanished.size() > kMaxVanishedListed) {
        y += kRow;
        out << "<text x=\"" << number(kMargin) << "\" y=\"" << number(y) << "\">and "
            << vanished.size() - kMaxVanishedListed << " more</text>\n";
    }
    out << "</g>\n";
}

std::size_t vanished_lines(const Difference& difference) {
    std::size_t count = difference.vanished().size();
    return count == 0 ? 0 : 1 + std::min(count, kMaxVanishedListed) + (count > kMaxVanishedListed ? 1 : 0);
}

void write_footer(std::ostream& out, const Geometry& geometry) {
    double y = geometry.height() - 10;
    out << "<text id=\"details\" x=\"" << number(kMargin) << "\" y=\"" << number(y)
        << "\">Hover over a frame for details, click to zoom, Ctrl-F or / to search</text>\n"
        << "<text id=\"matched\" x=\"" << number(kMargin + kWidth) << "\" y=\"" << number(y)
        << "\" text-anchor=\"end\"></text>\n"
        << "<script type=\"text/ecmascript\"><![CDATA[" << flamegraph_script() << "]]></script>\n"
        << "</svg>\n";
}

}  // namespace

// An interactive flamegraph: one <g> per frame inside #frames, read by the embedded script for
// hover details, click-to-zoom and search. Root at the bottom, or at the top with `reverse`.
void write_flamegraph(const Profile& profile, const WriteOptions& options, std::ostream& out) {
    Labels labels;
    FlameTree tree = build_tree(profile, options, labels);
    Layout layout(tree);
    std::optional<FlameTree> base_tree;
    std::optional<Difference> difference;
    double largest = 0;
    if (options.diff_base != nullptr) {
        base_tree.emplace(build_tree(*options.diff_base, options, labels));
        difference.emplace(tree, *base_tree, labels);
        for (const DrawnFrame& frame : layout.frames()) {
            if (frame.merged == 0) largest = std::max(largest, std::fabs(difference->change(frame.node)));
        }
    }
    Geometry geometry{layout.max_depth(), options.reverse, difference ? vanished_lines(*difference) : 0};
    std::string title = difference ? diff_title_text(options, profile.total_count(), difference->base_total())
                                   : title_text(profile.info, profile.total_count());
    std::string subtitle = difference ? diff_subtitle_text(largest) : subtitle_text(profile.info, options);
    write_header(out, profile, geometry, title, subtitle);
    out << "<g id=\"frames\" data-row=\"" << number(kRow) << "\">\n";
    const Difference* shading = difference ? &*difference : nullptr;
    for (const DrawnFrame& frame : layout.frames())
        write_frame(out, frame, labels[frame.label], geometry, tree.total(), shading, largest);
    out << "</g>\n";
    if (difference) write_vanished(out, *difference, geometry);
    write_footer(out, geometry);
}

}  // namespace pysample::exporters
