// What `record` says on standard error: progress while it runs, and a summary of the run.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "commands/options.hpp"
#include "commands/recorder.hpp"

namespace pysample::sampler {

// With -v: the first sample's time on the system-wide monotonic clock, so that a caller can time
// pysample's start-up from outside.
void log_first_sample();

void print_progress(std::uint64_t ticks, double elapsed, std::uint64_t errors);

// Samples, errors and why, native merges, pauses, the files written and the top functions.
void print_summary(Recorder& recorder, const RecordOptions& options, const std::vector<std::string>& written);

}  // namespace pysample::sampler
