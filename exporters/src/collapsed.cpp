#include <map>

#include "exporters/exporters.hpp"

namespace pysample::exporters {
namespace {

// Separators of the folded format must not appear inside a frame.
std::string sanitize(std::string text) {
    for (char& c : text) {
        if (c == ';') c = ':';
        if (c == '\n' || c == '\r' || c == '\t') c = ' ';
    }
    return text;
}

}  // namespace

void write_collapsed(const Profile& profile, const WriteOptions& options, std::ostream& out) {
    std::map<std::string, std::uint64_t> lines;
    for (const auto& stack : profile.stacks()) {
        std::string line;
        if (options.thread_roots) line = sanitize(thread_label(profile.threads()[stack.thread]));
        for (FrameId id : stack.frames) {
            if (!line.empty()) line += ';';
            line += sanitize(frame_label(profile.frame(id), options.line_numbers));
        }
        if (!line.empty()) lines[line] += stack.count;
    }
    for (const auto& [line, count] : lines) out << line << ' ' << count << '\n';
}

}  // namespace pysample::exporters
