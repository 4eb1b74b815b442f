// Launch mode: a command pysample starts, waits for to become a Python process, and ends with.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "attach/launch.hpp"
#include "commands/options.hpp"
#include "engine/timer.hpp"
#include "model/python_process.hpp"

namespace pysample::sampler {

// A command started by pysample, and the Python process it became.
struct Launched {
    std::unique_ptr<attach::ChildProcess> child;
    std::unique_ptr<PythonProcess> process;  // null when not waited for, or it never ran Python
    std::optional<int> exit_code;            // set when it ended without running Python: return it
};

// Starts `options.command`, passes stop signals on to it and, with `wait_for_python_to_run`, waits until it
// runs Python (its runtime mapped). When it ends first, or a stop signal arrives, says so unless
// stopping was asked for, and sets the not-Python exit code, so that a script can tell a profile
// from none.
Launched launch_command(const CommonOptions& options, StopSignals& signals, bool wait_for_python_to_run);

// What becomes of a launched command still running when sampling ends by itself (its duration, q):
// record waits for it to finish its work; top, whose session the command is part of, stops it.
enum class WhenDone { WaitForIt, StopIt };

// Ends launch mode, after the threads are let go of: Ctrl-C in a terminal reaches the command too,
// so it gets a moment to exit on its own before the stop signal is passed on. `reaped` is its exit
// status when a ptrace wait already took it. Says what it waits for (after `done`, e.g. "profile
// written"), and returns the command's exit code.
int finish_launched(attach::ChildProcess& child, std::optional<int> reaped, WhenDone when_done,
                    const CommonOptions& options, std::string_view done);

}  // namespace pysample::sampler
