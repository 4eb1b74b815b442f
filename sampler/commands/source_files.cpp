#include "commands/source_files.hpp"

#include <ctime>
#include <string>

#include "attach/target_files.hpp"

namespace pysample::sampler {
namespace {

constexpr std::size_t kMaxSourceBytes = 8 << 20;
constexpr std::size_t kMaxSourceFiles = 10'000;

std::string local_time(std::int64_t unix_ns) {
    std::time_t seconds = static_cast<std::time_t>(unix_ns / 1'000'000'000);
    std::tm local{};
    ::localtime_r(&seconds, &local);
    char text[64];
    std::strftime(text, sizeof text, "%Y-%m-%d %H:%M:%S", &local);
    return text;
}

exporters::SourceFile source_file(pid_t pid, const std::string& path, std::optional<std::int64_t> started) {
    exporters::SourceFile source;
    auto file = attach::read_target_file(pid, path, kMaxSourceBytes);
    if (!file) {
        source.why = "source not found: the process's " + path + " could not be read";
        return source;
    }
    source.text = std::move(file->text);
    source.state = exporters::SourceFile::State::Read;
    if (file->truncated) source.why = "source longer than " + std::to_string(kMaxSourceBytes >> 20) + " MB: cut there";
    if (started && file->mtime_ns > *started) {
        source.state = exporters::SourceFile::State::Changed;
        source.why = "source modified at " + local_time(file->mtime_ns) + ", after the process started at " +
                     local_time(*started) + ": its lines may not be the ones that ran";
    }
    return source;
}

}  // namespace

void read_source_files(exporters::Profile& profile, pid_t pid, std::optional<std::int64_t> process_start_ns) {
    for (const auto& frame : profile.frames()) {
        if (frame.synthetic || frame.filename.empty() || profile.sources.size() >= kMaxSourceFiles) continue;
        if (profile.sources.contains(frame.filename)) continue;
        profile.sources.emplace(frame.filename, source_file(pid, frame.filename, process_start_ns));
    }
}

}  // namespace pysample::sampler
