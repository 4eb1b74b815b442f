#pragma once

#include <sys/types.h>

#include <optional>
#include <string>
#include <vector>

#include "exporters/exporters.hpp"
#include "python_process.hpp"
#include "snapshot.hpp"

namespace pysample::sampler {

struct CommonOptions {
    pid_t pid = 0;
    std::vector<std::string> command;  // launch mode when non-empty
    bool blocking = false;
    NativeMode native = NativeMode::Off;
    bool verbose = false;
    bool quiet = false;
    std::optional<PythonVersion> python_version;
};

struct RecordOptions : CommonOptions {
    double rate = 100;
    double duration = 0;  // seconds; 0 = until Ctrl-C or the target exits
    struct Output {
        std::string path;  // empty: the default name, chosen when the run ends
        exporters::Format format;
    };
    std::vector<Output> outputs;
    bool reverse = false;
    exporters::SortKey sort = exporters::SortKey::Tottime;
    std::size_t top = 0;
    bool idle = false;
    bool threads = false;
    bool line_numbers = true;
    bool subprocesses = false;
};

struct DumpOptions : CommonOptions {};

int run_record(const RecordOptions& options);
int run_dump(const DumpOptions& options);

}  // namespace pysample::sampler
