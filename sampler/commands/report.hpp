// Profiles from recordings: what `report` writes, and what `diff` compares.
#pragma once

#include <string>

#include "commands/options.hpp"
#include "exporters/profile.hpp"

namespace pysample::sampler {

struct ReportedRecording {
    exporters::Profile profile;
    bool subprocesses = false;  // its stacks start with their process's root frame
};

// The recording `options.input` replayed into a profile as `options` asks (view, filters, lines),
// with a line on standard error saying what was read (unless quiet): how much, and where it is cut
// short or damaged. Throws attach::Error (BadInput) when the file is no recording or holds no
// readable block, (Usage) when it cannot give the view asked for.
ReportedRecording load_recording(const ReportOptions& options, bool keep_timeline);

// Whether the file at `path` begins as a recording does.
bool is_recording(const std::string& path);

}  // namespace pysample::sampler
