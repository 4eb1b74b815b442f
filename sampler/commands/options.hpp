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
    // asyncio's tasks: dump shows them as trees of who awaits whom; record and top rebuild the
    // stacks that run a task along its await chain.
    bool async_tasks = false;
    bool async_by_coroutine = false;  // --async-markers coroutine
    std::optional<PythonVersion> python_version;
};

struct OutputSpec {
    std::string path;  // empty: the default name, chosen when the run ends
    exporters::Format format;
};

struct RecordOptions : CommonOptions {
    double rate = 100;
    double duration = 0;  // seconds; 0 = until Ctrl-C or the target exits
    using Output = OutputSpec;
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
    bool locals = false;   // each frame's local variables
    bool opcodes = false;  // each frame's executing instruction
    bool json = false;
    bool gil = false;        // only the thread holding the GIL
    std::string core;        // a core file to read instead of a live process
    std::string executable;  // where the core's executable is, when not at its recorded path
    std::string root;        // the directory the core's files are looked up under
};

struct TopOptions : CommonOptions {
    double rate = 100;
    double duration = 0;   // seconds; 0 = until q, Ctrl-C or the target exits
    double interval = 1;   // seconds between refreshes
    std::size_t rows = 0;  // table rows; 0 = as many as fit the terminal (20 when not a terminal)
    bool idle = false;
};

// `pysample report`: outputs made from a recording.
struct ReportOptions {
    std::string input;
    std::vector<OutputSpec> outputs;
    bool threads = false;
    bool line_numbers = true;
    bool reverse = false;
    exporters::SortKey sort = exporters::SortKey::Tottime;
    std::size_t top = 0;
    // What a thread sample counts for: as the run was recorded, the CPU time of running threads,
    // every thread (recorded with --idle), or the GIL holder (recorded with --gil).
    enum class View { AsRecorded, Cpu, Wall, Gil };
    View view = View::AsRecorded;
    std::string thread;                   // a thread's id or name; empty: every thread
    std::optional<std::int64_t> process;  // a process's pid
    std::optional<double> from;           // seconds since the run started
    std::optional<double> to;
    bool quiet = false;
};

// `pysample diff`: how a run's profile changed from a base run's.
struct DiffOptions {
    std::string base;                 // a recording or collapsed stacks
    std::string changed;              // the same
    std::vector<OutputSpec> outputs;  // flamegraph or text
    bool line_numbers = false;        // frames match by function and file, whatever line they are at
    bool threads = false;
    bool reverse = false;
    std::size_t top = 0;
    bool quiet = false;
};

int run_record(const RecordOptions& options);
int run_report(const ReportOptions& options);
int run_diff(const DiffOptions& options);
int run_dump(const DumpOptions& options);
int run_top(const TopOptions& options);

}  // namespace pysample::sampler
