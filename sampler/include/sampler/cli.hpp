#pragma once

namespace pysample::sampler {

// Exit codes scripts can test for.
enum ExitCode : int {
    kExitOk = 0,
    kExitError = 1,
    kExitUsage = 2,
    kExitNoSuchProcess = 3,
    kExitPermissionDenied = 4,
    kExitNotPython = 5,
    kExitUnsupportedVersion = 6,
    kExitTargetExited = 7,
    kExitOutputUnwritable = 8,
    kExitBadInput = 9,
};

// The whole command line tool; returns the process exit code (the child's in launch mode).
int run_cli(int argc, char** argv);

}  // namespace pysample::sampler
