// `pysample diff BASE NEW`: a differential flame graph and a table of functions by how their share
// of the samples changed. Each input is a recording or collapsed stacks; shares, not counts, are
// compared, so runs of different lengths compare.

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <regex>
#include <string>

#include "attach/error.hpp"
#include "commands/options.hpp"
#include "commands/output_file.hpp"
#include "commands/profile_files.hpp"
#include "commands/report.hpp"
#include "exporters/exporters.hpp"
#include "exporters/utf8.hpp"
#include "sampler/cli.hpp"

namespace pysample::sampler {
namespace {

// "function (file:line)", "function (file)" or a frame pysample made ("thread 7 (main)" reads as a
// function at a file; it prints back the same, which is what matching needs).
exporters::Frame frame_from_label(const std::string& text) {
    static const std::regex located(R"(^(.*) \((.*)\)$)");
    std::smatch match;
    if (!std::regex_match(text, match, located)) return exporters::Frame::made_by_pysample(text);
    exporters::Frame frame;
    frame.function = match[1];
    std::string location = match[2];
    auto colon = location.rfind(':');
    if (colon != std::string::npos && colon + 1 < location.size() &&
        location.find_first_not_of("0123456789", colon + 1) == std::string::npos && location.size() - colon < 10) {
        frame.filename = location.substr(0, colon);
        frame.line = std::stoi(location.substr(colon + 1));
    } else {
        frame.filename = location == "?" ? "" : location;
    }
    return frame;
}

// Collapsed stacks ("a;b;c 12" per line), as pysample, py-spy, Austin or flamegraph.pl write them.
exporters::Profile profile_from_collapsed(const std::string& path) {
    std::ifstream in(path);
    if (!in) throw attach::Error(attach::ErrorKind::BadInput, "cannot read '" + path + "': " + std::strerror(errno));
    exporters::Profile profile;
    auto thread = profile.intern_thread({0, ""});
    std::string line;
    std::vector<exporters::FrameId> frames;
    std::size_t number = 0;
    while (std::getline(in, line)) {
        ++number;
        if (!line.empty() && line.back() == '\r') line.pop_back();
        if (line.empty()) continue;
        auto space = line.rfind(' ');
        if (space == std::string::npos || space + 1 == line.size() ||
            line.find_first_not_of("0123456789", space + 1) != std::string::npos || space + 20 < line.size()) {
            throw attach::Error(attach::ErrorKind::BadInput,
                                "'" + path + "' is neither a recording nor collapsed stacks: line " +
                                    std::to_string(number) + " does not end with a sample count");
        }
        frames.clear();
        std::size_t start = 0;
        while (start <= space) {
            auto end = line.find(';', start);
            if (end == std::string::npos || end > space) end = space;
            if (end > start) frames.push_back(profile.intern(frame_from_label(line.substr(start, end - start))));
            start = end + 1;
        }
        profile.add(thread, frames, std::stoull(line.substr(space + 1)));
    }
    return profile;
}

exporters::Profile load_profile(const std::string& path, const DiffOptions& options) {
    if (!is_recording(path)) return profile_from_collapsed(path);
    ReportOptions report;
    report.input = path;
    report.line_numbers = options.line_numbers;
    report.threads = options.threads;
    report.quiet = options.quiet;
    return std::move(load_recording(report, false).profile);
}

std::string default_diff_path(exporters::Format format) {
    return format == exporters::Format::Text ? kStandardOutput : "diff.svg";
}

}  // namespace

int run_diff(const DiffOptions& options) {
    for (const auto& output : options.outputs) {
        if (output.format != exporters::Format::Flamegraph && output.format != exporters::Format::Text) {
            throw attach::Error(attach::ErrorKind::Usage,
                                "diff writes a flamegraph (.svg) or a text table (.txt with "
                                "--format text), not " +
                                    std::string(exporters::format_name(output.format)));
        }
        check_output_path(output.path);
    }
    exporters::Profile base = load_profile(options.base, options);
    exporters::Profile changed = load_profile(options.changed, options);
    auto write =
        write_options(options.threads, options.line_numbers, options.reverse, exporters::SortKey::Tottime, options.top);
    write.diff_base = &base;
    write.diff_names = options.base + " -> " + options.changed;
    std::vector<OutputSpec> outputs = options.outputs;
    if (outputs.empty()) outputs.push_back({"", exporters::Format::Flamegraph});
    auto done = write_files(outputs, default_diff_path, [&](exporters::Format format, std::ostream& out) {
        if (format == exporters::Format::Text) {
            exporters::write_diff_table(base, changed, write, out);
        } else {
            exporters::write_flamegraph(changed, write, out);
        }
    });
    for (const auto& failure : done.failed) {
        std::fprintf(stderr, "pysample: %s\n", exporters::escape_control_characters(failure).c_str());
    }
    if (!options.quiet) {
        for (const auto& name : done.written) {
            if (!name.starts_with("standard output")) {
                std::fprintf(stderr, "pysample: wrote %s\n", exporters::escape_control_characters(name).c_str());
            }
        }
    }
    return done.failed.empty() ? kExitOk : kExitOutputUnwritable;
}

}  // namespace pysample::sampler
