#pragma once

#include <optional>
#include <ostream>
#include <string>
#include <string_view>
#include <vector>

#include "exporters/profile.hpp"

namespace pysample::exporters {

enum class Format { Collapsed, Flamegraph, Speedscope, Pstats, Text };

std::optional<Format> parse_format(std::string_view name);
std::string_view format_name(Format format);
std::string_view default_extension(Format format);
// Formats this build can write; the others are named by parse_format but refused with a clear message.
bool format_available(Format format);

struct WriteOptions {
    bool thread_roots = false;  // put "thread <id> (<name>)" as the root frame
    bool line_numbers = true;
};

// Folded stacks: "root;child;leaf count" per line, frames as "function (file:line)".
void write_collapsed(const Profile& profile, const WriteOptions& options, std::ostream& out);
void write_flamegraph(const Profile& profile, const WriteOptions& options, std::ostream& out);

void write_profile(Format format, const Profile& profile, const WriteOptions& options, std::ostream& out);

// "function (file:line)" as used in collapsed stacks and summaries.
std::string frame_label(const Frame& frame, bool line_numbers);
std::string thread_label(const ThreadInfo& thread);

}  // namespace pysample::exporters
