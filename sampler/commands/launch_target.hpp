// Launch mode: waiting for a started command to become a Python process.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "attach/launch.hpp"
#include "commands/options.hpp"
#include "model/python_process.hpp"

namespace pysample::sampler {

// Waits until a launched command has become a Python process with its runtime mapped. Returns
// nullptr when the child exits first or a stop signal arrives.
std::unique_ptr<PythonProcess> wait_for_python(attach::ChildProcess& child, const CommonOptions& options);

// When the launched command ended (with `status` from wait()) without ever running Python: says
// so, unless stopping was asked for, and returns the not-Python exit code, so that a script can
// tell a profile from none.
int no_python_ran(const std::vector<std::string>& command, int status, bool quiet);

}  // namespace pysample::sampler
