// `pysample report`: any output made from a recording, later. The samples are replayed into a
// profile the way `record` built its own (the same frames and stacks, interned in the same
// order, each sample at its time), so that a report with the options of the run is the file
// `record` would have written.

#include "commands/report.hpp"

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <map>
#include <sstream>
#include <unordered_map>

#include "attach/error.hpp"
#include "commands/options.hpp"
#include "commands/output_file.hpp"
#include "commands/profile_files.hpp"
#include "commands/source_files.hpp"
#include "exporters/recording.hpp"
#include "exporters/utf8.hpp"
#include "sampler/cli.hpp"

namespace pysample::sampler {
namespace {

using View = ReportOptions::View;

std::string read_whole_file(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) {
        throw attach::Error(attach::ErrorKind::BadInput,
                            "cannot read the recording '" + path + "': " + std::strerror(errno));
    }
    std::ostringstream data;
    data << in.rdbuf();
    return data.str();
}

View recorded_view(const exporters::RecordingInfo& info) {
    if (info.gil_read) return View::Gil;
    return info.mode == "wall" ? View::Wall : View::Cpu;
}

// The view asked for, if the recording has what it needs.
View chosen_view(const ReportOptions& options, const exporters::RecordingInfo& info, const std::string& path) {
    if (options.view == View::AsRecorded) return recorded_view(info);
    if (options.view == View::Gil && !info.gil_read) {
        throw attach::Error(attach::ErrorKind::Usage, "'" + path +
                                                          "' was recorded without --gil: which thread held the "
                                                          "GIL was not read; record with --gil to report it");
    }
    if (options.view == View::Wall && info.mode != "wall") {
        throw attach::Error(attach::ErrorKind::Usage,
                            "'" + path +
                                "' was recorded without --idle: threads that were not "
                                "running were not sampled; record with --idle to report them");
    }
    return options.view;
}

std::string counting_of(View view, const exporters::RecordingInfo& info) {
    switch (view) {
        case View::Gil: return "GIL holder";
        case View::Wall: return "wall-clock time";
        default: return info.mode == "wall" ? "samples of running threads" : "CPU time";
    }
}

class Replay {
public:
    Replay(const exporters::RecordingReader& reader, exporters::Profile& profile, const ReportOptions& options,
           View view)
        : reader_(reader), profile_(profile), options_(options), view_(view) {}

    void process(const exporters::RecordedProcess& process) {
        if (process.root_label.empty()) {
            roots_.erase(process.pid);
        } else {
            roots_[process.pid] = profile_.intern(exporters::Frame::made_by_pysample(process.root_label));
        }
    }

    void tick(std::uint64_t time_us, bool failed) {
        if (!in_window(time_us)) return;
        ++ticks_;
        if (failed) ++failed_ticks_;
        first_us_ = std::min(first_us_, time_us);
        last_us_ = std::max(last_us_, time_us);
    }

    void sample(const exporters::RecordedSample& sample) {
        const auto& thread = reader_.threads()[sample.thread];
        if (!in_window(sample.time_us) || !wanted(thread)) return;
        std::uint64_t count = weight_of(sample);
        if (count == 0) return;
        auto root = roots_.find(thread.pid);
        std::uint64_t root_key = root == roots_.end() ? 0 : std::uint64_t{root->second} + 1;
        Key key{sample.thread, sample.stack, root_key};
        auto known = stacks_.find(key);
        if (known != stacks_.end()) {
            profile_.add_again(sample.time_us, known->second, count);
        } else {
            auto stack = add_new(sample, thread, root == roots_.end() ? nullptr : &root->second, count);
            stacks_.emplace(key, stack);
        }
        samples_ += count;
    }

    std::uint64_t ticks() const { return ticks_; }
    std::uint64_t failed_ticks() const { return failed_ticks_; }
    std::uint64_t samples() const { return samples_; }
    bool any_tick() const { return ticks_ > 0; }
    std::uint64_t first_us() const { return first_us_; }
    std::uint64_t last_us() const { return last_us_; }

private:
    struct Key {
        std::uint32_t thread;
        std::uint32_t stack;
        std::uint64_t root;
        bool operator==(const Key&) const = default;
    };
    struct KeyHash {
        std::size_t operator()(const Key& key) const {
            return std::hash<std::uint64_t>()((std::uint64_t{key.thread} << 32 | key.stack) * 31 + key.root);
        }
    };

    bool in_window(std::uint64_t time_us) const {
        double seconds = static_cast<double>(time_us) / 1e6;
        return (!options_.from || seconds >= *options_.from) && (!options_.to || seconds < *options_.to);
    }

    bool wanted(const exporters::RecordedThread& thread) const {
        if (options_.process && thread.pid != *options_.process) return false;
        return options_.thread.empty() || options_.thread == thread.info.name ||
               options_.thread == std::to_string(thread.info.id);
    }

    std::uint64_t weight_of(const exporters::RecordedSample& sample) const {
        switch (view_) {
            case View::Gil: return (sample.flags & exporters::kSampleGilHolder) != 0 ? 1 : 0;
            case View::Wall: return sample.weight;
            default: return (sample.flags & exporters::kSampleIdle) != 0 ? 0 : sample.weight;
        }
    }

    // As record's ProfileStacks builds a stack: the process's root, the thread's (with
    // --threads under --subprocesses), the frames root first; then the thread.
    exporters::StackId add_new(const exporters::RecordedSample& sample, const exporters::RecordedThread& thread,
                               const exporters::FrameId* root, std::uint64_t count) {
        frames_.clear();
        if (root != nullptr) {
            frames_.push_back(*root);
            if (options_.threads) {
                frames_.push_back(
                    profile_.intern(exporters::Frame::made_by_pysample(exporters::thread_label(thread.info))));
            }
        }
        for (auto id : reader_.stacks()[sample.stack]) frames_.push_back(frame_id(id));
        return profile_.add_at(sample.time_us, profile_.intern_thread(thread.info), frames_, count);
    }

    exporters::FrameId frame_id(std::uint32_t recorded) {
        if (frame_ids_.size() <= recorded) frame_ids_.resize(reader_.frames().size(), kUnset);
        if (frame_ids_[recorded] != kUnset) return frame_ids_[recorded];
        exporters::Frame frame = reader_.frames()[recorded];
        if (!options_.line_numbers) frame.line = 0;
        return frame_ids_[recorded] = profile_.intern(frame);
    }

    static constexpr exporters::FrameId kUnset = 0xFFFFFFFFU;
    const exporters::RecordingReader& reader_;
    exporters::Profile& profile_;
    const ReportOptions& options_;
    View view_;
    std::map<std::int64_t, exporters::FrameId> roots_;
    std::unordered_map<Key, exporters::StackId, KeyHash> stacks_;
    std::vector<exporters::FrameId> frame_ids_;
    std::vector<exporters::FrameId> frames_;
    std::uint64_t ticks_ = 0;
    std::uint64_t failed_ticks_ = 0;
    std::uint64_t samples_ = 0;
    std::uint64_t first_us_ = UINT64_MAX;
    std::uint64_t last_us_ = 0;
};

// The run as the recording ends it, or as far as it was read; a time window covers its part.
exporters::RunInfo run_info(const exporters::RecordingReader& reader, const Replay& replay,
                            const ReportOptions& options, View view) {
    exporters::RunInfo run = reader.info().run;
    run.counting = counting_of(view, reader.info());
    bool windowed = options.from || options.to;
    if (reader.info().finished && !windowed) return run;
    double end = reader.info().finished ? run.duration_s : static_cast<double>(reader.last_time_us()) / 1e6;
    double from = options.from.value_or(0);
    double to = std::min(options.to.value_or(end), end);
    run.duration_s = std::max(0.0, to - from);
    run.samples = replay.ticks();
    run.errors = replay.failed_ticks();
    if (!reader.info().finished && run.duration_s > 0) {
        run.rate_hz = static_cast<double>(run.samples) / run.duration_s;
    }
    return run;
}

std::string seconds_text(double seconds) {
    char text[32];
    std::snprintf(text, sizeof(text), "%.1f s", seconds);
    return text;
}

std::string escaped(const std::string& text) { return exporters::escape_control_characters(text); }

void say_what_was_read(const ReportOptions& options, const exporters::RecordingReader& reader, const Replay& replay,
                       bool whole, const exporters::RunInfo& run) {
    const auto& info = reader.info();
    std::string what = "pysample: read " + escaped(options.input) + ": pid " + std::to_string(info.run.pid);
    if (!info.run.python_version.empty()) what += " (Python " + escaped(info.run.python_version) + ")";
    if (!info.run.start_time.empty()) what += ", started " + escaped(info.run.start_time);
    what += ", " + std::to_string(reader.ticks()) + " samples in " +
            seconds_text(static_cast<double>(reader.last_time_us()) / 1e6) + ", " +
            std::to_string(reader.samples_read()) + " thread stacks of " + std::to_string(reader.threads().size()) +
            " threads";
    std::fprintf(stderr, "%s\n", what.c_str());
    if (!whole) {
        std::fprintf(stderr,
                     "pysample: %s is damaged or cut short: %s; reporting the %zu blocks before it (%zu of %zu bytes, "
                     "the first %s)\n",
                     escaped(options.input).c_str(), escaped(reader.damage()).c_str(), reader.blocks(),
                     reader.bytes_read(), reader.size(),
                     seconds_text(static_cast<double>(reader.last_time_us()) / 1e6).c_str());
    } else if (!info.finished) {
        std::fprintf(stderr,
                     "pysample: %s has no end: its run stopped before it could finish it (killed, or out of "
                     "power); reporting the %s it holds\n",
                     escaped(options.input).c_str(),
                     seconds_text(static_cast<double>(reader.last_time_us()) / 1e6).c_str());
    }
    std::fprintf(stderr, "pysample: the report holds %llu thread samples (%s)",
                 static_cast<unsigned long long>(replay.samples()), run.counting.c_str());
    if (options.from || options.to || !options.thread.empty() || options.process) {
        std::fprintf(stderr, " of %s of the run", seconds_text(run.duration_s).c_str());
    }
    std::fputs("\n", stderr);
}

std::string default_report_path(const std::string& input, exporters::Format format) {
    std::string stem = input;
    auto slash = stem.rfind('/');
    if (slash != std::string::npos) stem = stem.substr(slash + 1);
    if (stem.ends_with(".pysample")) stem.resize(stem.size() - 9);
    return stem + std::string(exporters::default_extension(format));
}

}  // namespace

ReportedRecording load_recording(const ReportOptions& options, bool keep_timeline) {
    std::string data = read_whole_file(options.input);
    std::unique_ptr<exporters::RecordingReader> reader;
    try {
        reader = std::make_unique<exporters::RecordingReader>(std::move(data));
    } catch (const std::runtime_error& e) {
        throw attach::Error(attach::ErrorKind::BadInput, "'" + options.input + "' is " + e.what());
    }
    ReportedRecording loaded;
    exporters::Profile& profile = loaded.profile;
    profile.keep_timeline(keep_timeline);
    std::unique_ptr<Replay> replay;
    View view = View::AsRecorded;
    exporters::RecordingReader::Visitor visitor;
    // The run's options are in the first block: the view is chosen once they are read.
    auto ready = [&] {
        if (replay) return;
        view = chosen_view(options, reader->info(), options.input);
        replay = std::make_unique<Replay>(*reader, profile, options, view);
    };
    visitor.process = [&](const exporters::RecordedProcess& process) {
        ready();
        replay->process(process);
    };
    visitor.sample = [&](const exporters::RecordedSample& sample) {
        ready();
        replay->sample(sample);
    };
    visitor.tick = [&](std::uint64_t time_us, bool failed) {
        ready();
        replay->tick(time_us, failed);
    };
    bool whole = reader->read(visitor);
    if (!replay) {
        if (reader->blocks() == 0) {
            throw attach::Error(
                attach::ErrorKind::BadInput,
                "'" + options.input + "' holds no readable block: " +
                    (reader->damage().empty() ? std::string("it ends after its header") : reader->damage()));
        }
        ready();
    }
    profile.info = run_info(*reader, *replay, options, view);
    loaded.subprocesses = reader->info().subprocesses;
    if (!options.quiet) say_what_was_read(options, *reader, *replay, whole, profile.info);
    return loaded;
}

bool is_recording(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    char head[16] = {};
    in.read(head, sizeof(head));
    return exporters::looks_like_recording(std::string_view(head, static_cast<std::size_t>(in.gcount())));
}

int run_report(const ReportOptions& options) {
    for (const auto& output : options.outputs) {
        if (output.format == exporters::Format::Recording) {
            throw attach::Error(attach::ErrorKind::Usage,
                                "report writes profiles; a recording is made by 'pysample record -o FILE.pysample'");
        }
        check_output_path(output.path);
    }
    auto loaded = load_recording(
        options, std::any_of(options.outputs.begin(), options.outputs.end(),
                             [](const auto& output) { return exporters::shows_time_order(output.format); }));
    auto write = write_options(options.threads && !loaded.subprocesses, options.line_numbers, options.reverse,
                               options.sort, options.top);
    std::vector<OutputSpec> outputs = options.outputs;
    if (outputs.empty()) outputs.push_back({"", exporters::Format::Flamegraph});
    // The recorded process may be gone, its pid another's: sources are read at their paths here.
    if (std::any_of(outputs.begin(), outputs.end(), [](const auto& o) { return exporters::shows_source(o.format); })) {
        read_source_files(loaded.profile, 0, std::nullopt);
    }
    auto done = write_profile_files(loaded.profile, outputs, write, [&](exporters::Format format) {
        return default_report_path(options.input, format);
    });
    for (const auto& failure : done.failed) std::fprintf(stderr, "pysample: %s\n", escaped(failure).c_str());
    if (!options.quiet) {
        for (const auto& name : done.written) std::fprintf(stderr, "pysample: wrote %s\n", escaped(name).c_str());
    }
    return done.failed.empty() ? kExitOk : kExitOutputUnwritable;
}

}  // namespace pysample::sampler
