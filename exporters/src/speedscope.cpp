#include <algorithm>
#include <map>
#include <nlohmann/json.hpp>
#include <ostream>
#include <span>
#include <string>
#include <tuple>
#include <vector>

#include "exporters/exporters.hpp"

namespace pysample::exporters {
namespace {

using nlohmann::json;

constexpr const char* kSchema = "https://www.speedscope.app/file-format-schema.json";

// Names come from the target's memory: bytes that are not UTF-8 are replaced rather than thrown on.
std::string json_text(const json& value) { return value.dump(-1, ' ', false, json::error_handler_t::replace); }

json frame_entry(const Frame& frame, int line) {
    json entry = {{"name", frame.function}};
    if (!frame.filename.empty()) entry["file"] = frame.filename;
    if (line > 0) entry["line"] = line;
    return entry;
}

// speedscope's shared frame list, and where each of the profile's frames landed in it. Frames that
// differ only by a line that is not shown become one entry.
struct FrameTable {
    json entries = json::array();
    std::vector<std::size_t> index_of;  // by FrameId
};

FrameTable frame_table(const Profile& profile, bool line_numbers) {
    FrameTable table;
    std::map<std::tuple<std::string, std::string, int>, std::size_t> seen;
    for (const Frame& frame : profile.frames()) {
        int line = line_numbers ? frame.line : 0;
        auto [it, inserted] = seen.try_emplace({frame.function, frame.filename, line}, table.entries.size());
        if (inserted) table.entries.push_back(frame_entry(frame, line));
        table.index_of.push_back(it->second);
    }
    return table;
}

// Consecutive samples of one thread with the same stack, written as one weighted sample.
struct Run {
    StackId stack = 0;
    std::uint64_t count = 0;
};

bool timeline_covers_every_sample(const Profile& profile) {
    return profile.timeline_complete() && profile.timeline().size() == profile.total_count();
}

// Stacks that differ only in lines that are not shown are written alike, so they merge too.
bool written_alike(const Profile& profile, StackId a, StackId b, const std::vector<std::size_t>& index_of) {
    const auto& first = profile.stacks()[a].frames;
    const auto& second = profile.stacks()[b].frames;
    return a == b || std::equal(first.begin(), first.end(), second.begin(), second.end(),
                                [&](FrameId x, FrameId y) { return index_of[x] == index_of[y]; });
}

std::vector<std::vector<Run>> runs_in_time_order(const Profile& profile, const std::vector<std::size_t>& index_of) {
    std::vector<std::vector<Run>> runs(profile.threads().size());
    for (const auto& sample : profile.timeline()) {
        auto& thread_runs = runs[profile.stacks()[sample.stack].thread];
        if (!thread_runs.empty() && written_alike(profile, thread_runs.back().stack, sample.stack, index_of)) {
            ++thread_runs.back().count;
        } else {
            thread_runs.push_back({sample.stack, 1});
        }
    }
    return runs;
}

std::vector<std::vector<Run>> runs_per_unique_stack(const Profile& profile) {
    std::vector<std::vector<Run>> runs(profile.threads().size());
    const auto& stacks = profile.stacks();
    for (std::size_t id = 0; id < stacks.size(); ++id) {
        runs[stacks[id].thread].push_back({static_cast<StackId>(id), stacks[id].count});
    }
    return runs;
}

// Time order when every sample is on the timeline; otherwise each unique stack once, weighted.
std::vector<std::vector<Run>> runs_by_thread(const Profile& profile, const std::vector<std::size_t>& index_of) {
    return timeline_covers_every_sample(profile) ? runs_in_time_order(profile, index_of)
                                                 : runs_per_unique_stack(profile);
}

std::string profile_name(const ThreadInfo& thread) {
    std::string tid = std::to_string(thread.id);
    return thread.name.empty() ? "thread " + tid : thread.name + " (tid " + tid + ")";
}

std::string exporter_name(const std::string& version) { return version.empty() ? "pysample" : "pysample " + version; }

// Seconds when the sampling rate is known, else plain sample counts (unit "none"). Dividing the
// count by the rate keeps weights such as 3 samples at 100 Hz printed as 0.03.
double weight(std::uint64_t count, double rate_hz) {
    auto samples = static_cast<double>(count);
    return rate_hz > 0 ? samples / rate_hz : samples;
}

void write_stack(std::ostream& out, std::span<const FrameId> frames, const std::vector<std::size_t>& index_of) {
    out << '[';
    for (std::size_t i = 0; i < frames.size(); ++i) {
        if (i > 0) out << ',';
        out << index_of[frames[i]];
    }
    out << ']';
}

void write_thread_profile(std::ostream& out, const Profile& profile, const ThreadInfo& thread,
                          const std::vector<Run>& runs, const std::vector<std::size_t>& index_of) {
    double rate = profile.info.rate_hz;
    std::uint64_t total = 0;
    for (const Run& run : runs) total += run.count;
    out << "{\"type\":\"sampled\",\"name\":" << json_text(profile_name(thread))
        << ",\"unit\":" << json_text(rate > 0 ? "seconds" : "none") << ",\"startValue\":0"
        << ",\"endValue\":" << json_text(weight(total, rate)) << ",\"samples\":[";
    for (std::size_t i = 0; i < runs.size(); ++i) {
        if (i > 0) out << ',';
        write_stack(out, profile.stacks()[runs[i].stack].frames, index_of);
    }
    out << "],\"weights\":[";
    for (std::size_t i = 0; i < runs.size(); ++i) {
        if (i > 0) out << ',';
        out << json_text(weight(runs[i].count, rate));
    }
    out << "]}";
}

}  // namespace

// Written piece by piece rather than as one JSON tree: a long recording holds millions of samples.
// Every profile is already one thread, so thread root frames would add nothing and are not written.
void write_speedscope(const Profile& profile, const WriteOptions& options, std::ostream& out) {
    FrameTable frames = frame_table(profile, options.line_numbers);
    std::string name =
        profile.info.command_line.empty() ? "pid " + std::to_string(profile.info.pid) : profile.info.command_line;
    out << "{\"$schema\":" << json_text(kSchema) << ",\"name\":" << json_text(name)
        << ",\"exporter\":" << json_text(exporter_name(options.version)) << ",\"activeProfileIndex\":0"
        << ",\"shared\":{\"frames\":" << json_text(frames.entries) << "},\"profiles\":[";
    auto runs = runs_by_thread(profile, frames.index_of);
    bool first = true;
    for (std::size_t thread = 0; thread < runs.size(); ++thread) {
        if (runs[thread].empty()) continue;
        if (!first) out << ',';
        first = false;
        write_thread_profile(out, profile, profile.threads()[thread], runs[thread], frames.index_of);
    }
    out << "]}\n";
}

}  // namespace pysample::exporters
