// How pysample's log lines look: "pysample: [level] message", the message escaped, since it may
// carry paths and names from the target.
#pragma once

#include <spdlog/formatter.h>

#include <memory>

namespace pysample::sampler {

std::unique_ptr<spdlog::formatter> log_formatter();

}  // namespace pysample::sampler
