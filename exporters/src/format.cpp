#include <stdexcept>

#include "exporters/exporters.hpp"

namespace pysample::exporters {
namespace {

bool ends_with(std::string_view text, std::string_view suffix) {
    return text.size() >= suffix.size() && text.substr(text.size() - suffix.size()) == suffix;
}

constexpr Format kAllFormats[] = {Format::Flamegraph, Format::Collapsed, Format::Speedscope, Format::Pstats,
                                  Format::Text,       Format::Chrome,    Format::Pprof,      Format::Callgrind,
                                  Format::Annotate,   Format::Recording};

std::string_view base_name(std::string_view path) {
    auto slash = path.rfind('/');
    return slash == std::string_view::npos ? path : path.substr(slash + 1);
}

}  // namespace

std::optional<Format> parse_format(std::string_view name) {
    if (name == "collapsed" || name == "raw") return Format::Collapsed;
    if (name == "flamegraph" || name == "svg") return Format::Flamegraph;
    if (name == "speedscope") return Format::Speedscope;
    if (name == "pstats") return Format::Pstats;
    if (name == "text") return Format::Text;
    if (name == "chrome") return Format::Chrome;
    if (name == "pprof") return Format::Pprof;
    if (name == "callgrind") return Format::Callgrind;
    if (name == "annotate") return Format::Annotate;
    if (name == "recording") return Format::Recording;
    return std::nullopt;
}

std::string_view format_name(Format format) {
    switch (format) {
        case Format::Collapsed: return "collapsed";
        case Format::Flamegraph: return "flamegraph";
        case Format::Speedscope: return "speedscope";
        case Format::Pstats: return "pstats";
        case Format::Text: return "text";
        case Format::Chrome: return "chrome";
        case Format::Pprof: return "pprof";
        case Format::Callgrind: return "callgrind";
        case Format::Annotate: return "annotate";
        case Format::Recording: return "recording";
    }
    return "unknown";
}

std::string format_names() {
    std::string names;
    for (Format format : kAllFormats) {
        if (!names.empty()) names += '|';
        names += format_name(format);
    }
    return names;
}

bool shows_time_order(Format format) { return format == Format::Chrome || format == Format::Speedscope; }

bool shows_source(Format format) { return format == Format::Annotate; }

std::string_view default_extension(Format format) {
    switch (format) {
        case Format::Collapsed: return ".txt";
        case Format::Flamegraph: return ".svg";
        case Format::Speedscope: return ".speedscope.json";
        case Format::Pstats: return ".pstats";
        case Format::Text: return ".prof.txt";
        case Format::Chrome: return ".json";
        case Format::Pprof: return ".pb.gz";
        case Format::Callgrind: return ".callgrind";
        case Format::Annotate: return ".annotate.txt";
        case Format::Recording: return ".pysample";
    }
    return ".out";
}

// Longer suffixes first: ".speedscope.json" before ".json", ".prof.txt" before ".txt".
std::optional<Format> format_for_path(std::string_view path) {
    if (ends_with(path, ".pysample")) return Format::Recording;
    if (ends_with(path, ".pb.gz") || ends_with(path, ".pprof")) return Format::Pprof;
    if (base_name(path).starts_with("callgrind.out") || ends_with(path, ".callgrind")) return Format::Callgrind;
    if (ends_with(path, ".svg")) return Format::Flamegraph;
    if (ends_with(path, ".speedscope.json") || ends_with(path, ".speedscope")) return Format::Speedscope;
    if (ends_with(path, ".json") || ends_with(path, ".trace")) return Format::Chrome;
    if (ends_with(path, ".pstats") || ends_with(path, ".prof")) return Format::Pstats;
    if (ends_with(path, ".prof.txt") || ends_with(path, ".pstats.txt")) return Format::Text;
    if (ends_with(path, ".annotate.txt") || ends_with(path, ".annotate")) return Format::Annotate;
    if (ends_with(path, ".txt") || ends_with(path, ".folded") || ends_with(path, ".collapsed")) {
        return Format::Collapsed;
    }
    return std::nullopt;
}

std::optional<SortKey> parse_sort_key(std::string_view name) {
    if (name == "tottime" || name == "time") return SortKey::Tottime;
    if (name == "cumtime" || name == "cumulative") return SortKey::Cumtime;
    if (name == "samples" || name == "ncalls" || name == "calls") return SortKey::Ncalls;
    if (name == "name") return SortKey::Name;
    return std::nullopt;
}

// A frame read from the target always shows where it is, "?" for a file it does not name: a
// function named "f (/etc/passwd:1)" can then not pass for a location.
std::string frame_label(const Frame& frame, bool line_numbers) {
    std::string label = frame.function;
    if (frame.synthetic) return label;
    label += " (" + (frame.filename.empty() ? std::string("?") : frame.filename);
    if (line_numbers && frame.line > 0) label += ":" + std::to_string(frame.line);
    label += ")";
    return label;
}

std::string thread_label(const ThreadInfo& thread) {
    std::string label = "thread " + std::to_string(thread.id);
    if (!thread.name.empty()) label += " (" + thread.name + ")";
    return label;
}

void write_profile(Format format, const Profile& profile, const WriteOptions& options, std::ostream& out) {
    switch (format) {
        case Format::Collapsed: write_collapsed(profile, options, out); return;
        case Format::Flamegraph: write_flamegraph(profile, options, out); return;
        case Format::Speedscope: write_speedscope(profile, options, out); return;
        case Format::Pstats: write_pstats(profile, options, out); return;
        case Format::Text: write_text(profile, options, out); return;
        case Format::Chrome: write_chrome(profile, options, out); return;
        case Format::Pprof: write_pprof(profile, options, out); return;
        case Format::Callgrind: write_callgrind(profile, options, out); return;
        case Format::Annotate: write_annotate(profile, options, out); return;
        case Format::Recording: break;  // written while sampling (RecordingWriter)
    }
    throw std::invalid_argument("unknown output format");
}

}  // namespace pysample::exporters
