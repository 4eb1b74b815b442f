#pragma once

#include <sys/types.h>

#include <optional>
#include <string>
#include <vector>

#include "engine/snapshot.hpp"
#include "exporters/exporters.hpp"
#include "model/python_process.hpp"

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
    bool gil = false;  // only samples of the thread holding the GIL
    bool subprocesses = false;
};

struct DumpOptions : CommonOptions {
    bool locals = false;  // each frame's local variables
    bool json = false;
    bool gil = false;  // only the thread holding the GIL
};

struct TopOptions : CommonOptions {
    double rate = 100;
    double duration = 0;   // seconds; 0 = until q, Ctrl-C or the target exits
    double interval = 1;   // seconds between refreshes
    std::size_t rows = 0;  // table rows; 0 = as many as fit the terminal (20 when not a terminal)
    bool idle = false;
};

int run_record(const RecordOptions& options);
int run_dump(const DumpOptions& options);
int run_top(const TopOptions& options);

}  // namespace pysample::sampler
