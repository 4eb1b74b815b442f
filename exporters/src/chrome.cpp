#include <algorithm>
#include <cmath>
#include <nlohmann/json.hpp>
#include <ostream>
#include <span>
#include <string>
#include <vector>

#include "exporters/exporters.hpp"

namespace pysample::exporters {
namespace {

using nlohmann::json;

// Names come from the target's memory: bytes that are not UTF-8 are replaced rather than thrown on.
std::string json_text(const json& value) { return value.dump(-1, ' ', false, json::error_handler_t::replace); }

// Microseconds one sample stands for: from the asked rate, else the run's average spacing, else 10 ms.
std::uint64_t interval_us(const RunInfo& info) {
    double seconds = info.interval_s();
    if (seconds <= 0 && info.samples > 0) seconds = info.duration_s / static_cast<double>(info.samples);
    if (seconds <= 0) seconds = 0.01;
    return std::max<std::uint64_t>(1, static_cast<std::uint64_t>(std::llround(seconds * 1e6)));
}

// The current line moves while a function runs, so a slice continues as long as the same function
// (name, file and first line) stays at the same depth.
bool same_function(const Frame& a, const Frame& b) {
    return a.function == b.function && a.filename == b.filename && a.first_line == b.first_line;
}

struct Slice {
    FrameId frame = 0;
    std::uint64_t start = 0;
    std::uint64_t end = 0;
};

// One thread's slices, built sample by sample from the timeline. Slices are stored in the order they
// open, so parents come before their children and earlier slices before later ones.
class ThreadTrack {
public:
    ThreadTrack(const Profile& profile, std::uint64_t interval) : profile_(&profile), interval_(interval) {}

    void add_sample(std::uint64_t time, std::span<const FrameId> frames) {
        // A thread that went unsampled (idle, or not running Python) ends its slices one interval
        // after it was last seen instead of stretching them over the gap.
        if (!open_.empty() && time > last_ + 2 * interval_) close_from(0, last_ + interval_);
        std::size_t depth = matching_depth(frames);
        close_from(depth, time);
        for (std::size_t i = depth; i < frames.size(); ++i) {
            open_.push_back(slices_.size());
            slices_.push_back({frames[i], time, time});
        }
        last_ = std::max(last_, time);
    }

    void finish() { close_from(0, last_ + interval_); }

    const std::vector<Slice>& slices() const { return slices_; }

private:
    std::size_t matching_depth(std::span<const FrameId> frames) const {
        std::size_t depth = 0;
        while (depth < open_.size() && depth < frames.size() &&
               same_function(profile_->frame(slices_[open_[depth]].frame), profile_->frame(frames[depth]))) {
            ++depth;
        }
        return depth;
    }

    void close_from(std::size_t depth, std::uint64_t end) {
        while (open_.size() > depth) {
            Slice& slice = slices_[open_.back()];
            slice.end = std::max(end, slice.start);  // never negative, even for out-of-order samples
            open_.pop_back();
        }
    }

    const Profile* profile_;
    std::uint64_t interval_;
    std::vector<Slice> slices_;
    std::vector<std::size_t> open_;  // indices into slices_, root first
    std::uint64_t last_ = 0;
};

std::vector<ThreadTrack> tracks_from_timeline(const Profile& profile) {
    std::vector<ThreadTrack> tracks(profile.threads().size(), ThreadTrack(profile, interval_us(profile.info)));
    for (const auto& sample : profile.timeline()) {
        const StackCount& stack = profile.stacks()[sample.stack];
        tracks[stack.thread].add_sample(sample.time_us, stack.frames);
    }
    for (auto& track : tracks) track.finish();
    return tracks;
}

std::string process_name(const RunInfo& info) {
    return info.command_line.empty() ? "pid " + std::to_string(info.pid) : info.command_line;
}

std::string thread_name(const ThreadInfo& thread) {
    return thread.name.empty() ? "thread " + std::to_string(thread.id) : thread.name;
}

json process_name_event(const RunInfo& info) {
    return {{"ph", "M"}, {"name", "process_name"}, {"pid", info.pid}, {"args", {{"name", process_name(info)}}}};
}

json thread_name_event(const RunInfo& info, const ThreadInfo& thread) {
    return {{"ph", "M"},
            {"name", "thread_name"},
            {"pid", info.pid},
            {"tid", thread.id},
            {"args", {{"name", thread_name(thread)}}}};
}

// The line is where the function starts, or the first line seen in it when that is unknown.
json slice_args(const Frame& frame, bool line_numbers) {
    json args = {{"file", frame.filename}};
    int line = frame.first_line > 0 ? frame.first_line : frame.line;
    if (line_numbers && line > 0) args["line"] = line;
    return args;
}

// What a slice event takes from its frame, escaped once per frame rather than once per slice: a long
// recording makes millions of slices of a few hundred functions.
struct FrameText {
    std::string name;  // a JSON string
    std::string args;  // a JSON object
};

std::vector<FrameText> frame_texts(const Profile& profile, bool line_numbers) {
    std::vector<FrameText> texts;
    texts.reserve(profile.frames().size());
    for (const Frame& frame : profile.frames()) {
        texts.push_back({json_text(frame.function), json_text(slice_args(frame, line_numbers))});
    }
    return texts;
}

std::string slice_event(const FrameText& frame, const Slice& slice, int pid, std::uint64_t tid) {
    return "{\"ph\":\"X\",\"name\":" + frame.name + ",\"cat\":\"python\",\"ts\":" + std::to_string(slice.start) +
           ",\"dur\":" + std::to_string(slice.end - slice.start) + ",\"pid\":" + std::to_string(pid) +
           ",\"tid\":" + std::to_string(tid) + ",\"args\":" + frame.args + "}";
}

json run_info(const Profile& profile, const WriteOptions& options) {
    const RunInfo& info = profile.info;
    json data = {{"exporter", options.version.empty() ? "pysample" : "pysample " + options.version},
                 {"pid", info.pid},
                 {"command_line", info.command_line},
                 {"python_version", info.python_version},
                 {"rate_hz", info.rate_hz},
                 {"duration_s", info.duration_s},
                 {"samples", info.samples},
                 {"errors", info.errors},
                 {"start_time", info.start_time},
                 {"timeline_samples", profile.timeline().size()},
                 {"profile_samples", profile.total_count()},
                 {"timeline_complete", profile.timeline_complete()}};
    if (!profile.timeline_complete()) {
        data["note"] = "the timeline reached its size limit: only the first " +
                       std::to_string(profile.timeline().size()) + " of " + std::to_string(profile.total_count()) +
                       " samples are shown as events";
    }
    return data;
}

// Written event by event rather than as one JSON tree: a long recording makes millions of slices.
class EventWriter {
public:
    explicit EventWriter(std::ostream& out) : out_(out) { out_ << "{\"traceEvents\":[\n"; }

    void write(const json& event) { write(json_text(event)); }

    void write(const std::string& event_text) {
        if (!first_) out_ << ",\n";
        first_ = false;
        out_ << event_text;
    }

    void finish(const json& other_data) {
        out_ << "\n],\"displayTimeUnit\":\"ms\",\"otherData\":" << json_text(other_data) << "}\n";
    }

private:
    std::ostream& out_;
    bool first_ = true;
};

}  // namespace

// Each thread is already its own track, so thread root frames would add nothing and are not written.
void write_chrome(const Profile& profile, const WriteOptions& options, std::ostream& out) {
    EventWriter writer(out);
    writer.write(process_name_event(profile.info));
    for (const auto& thread : profile.threads()) writer.write(thread_name_event(profile.info, thread));
    auto frames = frame_texts(profile, options.line_numbers);
    auto tracks = tracks_from_timeline(profile);
    for (std::size_t thread = 0; thread < tracks.size(); ++thread) {
        std::uint64_t tid = profile.threads()[thread].id;
        for (const Slice& slice : tracks[thread].slices()) {
            writer.write(slice_event(frames[slice.frame], slice, profile.info.pid, tid));
        }
    }
    writer.finish(run_info(profile, options));
}

}  // namespace pysample::exporters
