#include <stdexcept>

#include "exporters/exporters.hpp"

namespace pysample::exporters {

std::optional<Format> parse_format(std::string_view name) {
    if (name == "collapsed" || name == "raw") return Format::Collapsed;
    if (name == "flamegraph" || name == "svg") return Format::Flamegraph;
    if (name == "speedscope") return Format::Speedscope;
    if (name == "pstats") return Format::Pstats;
    if (name == "text") return Format::Text;
    return std::nullopt;
}

std::string_view format_name(Format format) {
    switch (format) {
        case Format::Collapsed: return "collapsed";
        case Format::Flamegraph: return "flamegraph";
        case Format::Speedscope: return "speedscope";
        case Format::Pstats: return "pstats";
        case Format::Text: return "text";
    }
    return "unknown";
}

std::string_view default_extension(Format format) {
    switch (format) {
        case Format::Collapsed: return ".txt";
        case Format::Flamegraph: return ".svg";
        case Format::Speedscope: return ".speedscope.json";
        case Format::Pstats: return ".pstats";
        case Format::Text: return ".prof.txt";
    }
    return ".out";
}

bool format_available(Format format) { return format == Format::Collapsed || format == Format::Flamegraph; }

std::string frame_label(const Frame& frame, bool line_numbers) {
    std::string label = frame.function;
    if (frame.filename.empty()) return label;
    label += " (" + frame.filename;
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
        default:
            throw std::invalid_argument("the " + std::string(format_name(format)) +
                                        " format is not available in this build; use collapsed or flamegraph");
    }
}

}  // namespace pysample::exporters
