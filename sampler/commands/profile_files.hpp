// Writing a profile to the files asked for, each in its format: shared by record and report.
#pragma once

#include <functional>
#include <ostream>
#include <string>
#include <vector>

#include "commands/options.hpp"
#include "exporters/exporters.hpp"

namespace pysample::sampler {

// What was done: "path (format)" for each file written, a message for each that was not.
struct WrittenOutputs {
    std::vector<std::string> written;
    std::vector<std::string> failed;
};

// How the commands that write profiles shape them; thread roots are the writers' only without
// process roots, under which the profile has them already.
exporters::WriteOptions write_options(bool thread_roots, bool line_numbers, bool reverse, exporters::SortKey sort,
                                      std::size_t top);

// Each file is written whole or not at all (see OutputFile) by `write`; one that fails does not
// stop the others. Recordings are skipped: they are written while sampling. An output without a
// path goes to default_path(its format).
WrittenOutputs write_files(const std::vector<OutputSpec>& outputs,
                           const std::function<std::string(exporters::Format)>& default_path,
                           const std::function<void(exporters::Format, std::ostream&)>& write);

// write_files() of a profile, each file in its format.
WrittenOutputs write_profile_files(const exporters::Profile& profile, const std::vector<OutputSpec>& outputs,
                                   const exporters::WriteOptions& write,
                                   const std::function<std::string(exporters::Format)>& default_path);

}  // namespace pysample::sampler
