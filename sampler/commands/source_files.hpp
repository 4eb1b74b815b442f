// The source files a profile's frames name, read as the target sees them, for the formats that
// show source.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <optional>

#include "exporters/profile.hpp"

namespace pysample::sampler {

// Fills profile.sources for every file its frames name: read through the process's root and
// working directory, marked changed when modified after `process_start_ns`.
void read_source_files(exporters::Profile& profile, pid_t pid, std::optional<std::int64_t> process_start_ns);

}  // namespace pysample::sampler
