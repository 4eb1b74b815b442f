// Launch mode: waiting for a started command to become a Python process.
#pragma once

#include <memory>

#include "attach/launch.hpp"
#include "options.hpp"
#include "python_process.hpp"

namespace pysample::sampler {

// Waits until a launched command has become a Python process with its runtime mapped. Returns
// nullptr when the child exits first or a stop signal arrives.
std::unique_ptr<PythonProcess> wait_for_python(attach::ChildProcess& child, const CommonOptions& options);

}  // namespace pysample::sampler
