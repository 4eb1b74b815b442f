#pragma once

#include <optional>
#include <ostream>
#include <string>
#include <string_view>
#include <vector>

#include "exporters/profile.hpp"

namespace pysample::exporters {

// Recording is pysample's own record of every sample (exporters/recording.hpp), written while
// sampling rather than from a profile.
enum class Format { Collapsed, Flamegraph, Speedscope, Pstats, Text, Chrome, Pprof, Callgrind, Annotate, Recording };

std::optional<Format> parse_format(std::string_view name);
std::string_view format_name(Format format);
std::string_view default_extension(Format format);
// Formats that write samples in time order and so need the profile's timeline.
bool shows_time_order(Format format);
// Formats that show the source files' lines (Profile::sources).
bool shows_source(Format format);
// The format a file name asks for by its suffix (.svg, .speedscope.json, .json, .pstats/.prof, .txt,
// .pb.gz...) or, for callgrind, by the tools' own "callgrind.out.*".
std::optional<Format> format_for_path(std::string_view path);
// "collapsed|flamegraph|..." for help texts.
std::string format_names();

enum class SortKey { Tottime, Cumtime, Ncalls, Name };
std::optional<SortKey> parse_sort_key(std::string_view name);

struct WriteOptions {
    bool thread_roots = false;  // put "thread <id> (<name>)" as the root frame
    bool line_numbers = true;
    bool reverse = false;             // flamegraph: icicle graph (root on top) instead of root at the bottom
    SortKey sort = SortKey::Tottime;  // text
    std::size_t top = 0;              // text: number of rows, 0 = all; annotate: functions, 0 = 10
    bool color = false;               // annotate: colour the margin, for a terminal
    std::string version = "";         // pysample's version, for formats that record their exporter
    // flamegraph: a differential one, coloured by how each frame's share of the samples changed
    // from this profile to the one drawn (which sizes the frames), and listing the base's stacks
    // that are gone. `diff_names` says which two runs they are ("base.pysample -> new.pysample").
    const Profile* diff_base = nullptr;
    std::string diff_names = "";
};

// Folded stacks: "root;child;leaf count" per line, frames as "function (file:line)".
void write_collapsed(const Profile& profile, const WriteOptions& options, std::ostream& out);
// Self-contained interactive SVG (hover, zoom, search), no network access; differential with
// options.diff_base.
void write_flamegraph(const Profile& profile, const WriteOptions& options, std::ostream& out);
// speedscope's file format: one sampled profile per thread, weights in seconds.
void write_speedscope(const Profile& profile, const WriteOptions& options, std::ostream& out);
// The marshalled stats dict that pstats.Stats(path) loads.
void write_pstats(const Profile& profile, const WriteOptions& options, std::ostream& out);
// cProfile's printed table.
void write_text(const Profile& profile, const WriteOptions& options, std::ostream& out);
// Chrome/Perfetto trace events: one track per thread, one slice per contiguous run of a frame.
void write_chrome(const Profile& profile, const WriteOptions& options, std::ostream& out);
// pprof's gzip-compressed protobuf: go tool pprof, Pyroscope, Parca, Grafana. Threads are labels.
void write_pprof(const Profile& profile, const WriteOptions& options, std::ostream& out);
// Callgrind's format, for KCachegrind and callgrind_annotate: own samples by line, calls with the
// samples under them.
void write_callgrind(const Profile& profile, const WriteOptions& options, std::ostream& out);

// The hottest functions' source, like perf annotate: each line with its own and total share of the
// samples in the margin; `top` functions (default 10) by total share.
void write_annotate(const Profile& profile, const WriteOptions& options, std::ostream& out);

void write_profile(Format format, const Profile& profile, const WriteOptions& options, std::ostream& out);

// The functions of two profiles by how their share of the samples changed from `base` to `changed`:
// own (running itself) and total (anywhere on the stack), in percentage points, the largest change
// of either first. Functions are matched by name and file, whatever their first line.
void write_diff_table(const Profile& base, const Profile& changed, const WriteOptions& options, std::ostream& out);

// "function (file:line)" as used in collapsed stacks and summaries.
std::string frame_label(const Frame& frame, bool line_numbers);
std::string thread_label(const ThreadInfo& thread);

}  // namespace pysample::exporters
