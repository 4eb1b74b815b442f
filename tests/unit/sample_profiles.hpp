// Hand-built profiles shared by the exporter tests.
#pragma once

#include <vector>

#include "exporters/profile.hpp"

namespace pysample::exporters::testing {

// Two threads: MainThread with <module>;run (2 samples) and <module>;run;Worker.work (3), worker with
// <module>;run;Worker.work (5).
inline Profile small_profile() {
    Profile profile;
    auto main_thread = profile.intern_thread({100, "MainThread"});
    auto worker = profile.intern_thread({101, "worker"});
    auto module = profile.intern({"<module>", "/app/x.py", 30});
    auto run = profile.intern({"run", "/app/x.py", 12});
    auto work = profile.intern({"Worker.work", "/app/x.py", 5});
    std::vector<FrameId> a{module, run};
    std::vector<FrameId> b{module, run, work};
    profile.add(main_thread, a, 2);
    profile.add(main_thread, b, 3);
    profile.add(worker, b, 5);
    return profile;
}

}  // namespace pysample::exporters::testing
