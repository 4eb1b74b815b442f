// What every snapshotter of a run counted, added up over the processes sampled.
#pragma once

#include "attach/ptrace.hpp"
#include "engine/async_stacks.hpp"
#include "engine/native_stack.hpp"
#include "engine/snapshot.hpp"

namespace pysample::sampler {

struct RunTotals {
    SnapshotStats snapshots;
    NativeStats native;
    attach::StopFailures stops;  // threads a pause could not stop
    AsyncStats async;            // with --async
    bool async_used = false;

    void add(Snapshotter& snapshotter, const AsyncStacks* async_stacks = nullptr);
    void add(const RunTotals& other);
};

}  // namespace pysample::sampler
