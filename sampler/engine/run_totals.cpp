#include "engine/run_totals.hpp"

#include <algorithm>

namespace pysample::sampler {
namespace {

void add_snapshots(SnapshotStats& into, const SnapshotStats& from) {
    into.thread_stacks += from.thread_stacks;
    into.rejected += from.rejected;
    into.cut += from.cut;
    into.unknown_thread_stacks += from.unknown_thread_stacks;
    into.deepest = std::max(into.deepest, from.deepest);
    for (const auto& [reason, count] : from.reasons) into.reasons[reason] += count;
    into.unreadable_lists += from.unreadable_lists;
    for (const auto& [reason, count] : from.list_reasons) into.list_reasons[reason] += count;
}

void add_stops(attach::StopFailures& into, const attach::StopFailures& from) {
    into.uninterruptible += from.uninterruptible;
    into.waiting_for_cpu += from.waiting_for_cpu;
    into.other_state += from.other_state;
    into.traced_elsewhere += from.traced_elsewhere;
    if (from.tracer != 0) into.tracer = from.tracer;
}

void add_native(NativeStats& into, const NativeStats& from) {
    into.merged += from.merged;
    into.not_merged += from.not_merged;
    into.copied_bytes += from.copied_bytes;
    for (const auto& [reason, count] : from.reasons) into.reasons[reason] += count;
}

void add_async(AsyncStats& into, const AsyncStats& from) {
    into.task_samples += from.task_samples;
    into.new_task_samples += from.new_task_samples;
    into.outside_tasks += from.outside_tasks;
    into.waiting_samples += from.waiting_samples;
    into.oldest_read_ms = std::max(into.oldest_read_ms, from.oldest_read_ms);
    into.reads += from.reads;
    into.tasks = std::max(into.tasks, from.tasks);
    into.tasks_unreadable = std::max(into.tasks_unreadable, from.tasks_unreadable);
    into.available = into.available || from.available;
    if (into.reason.empty()) into.reason = from.reason;
}

}  // namespace

void RunTotals::add(Snapshotter& snapshotter, const AsyncStacks* async_stacks) {
    if (async_stacks != nullptr) {
        add_async(async, async_stacks->stats());
        async_used = true;
    }
    add_snapshots(snapshots, snapshotter.stats());
    if (const auto* from = snapshotter.native_stats()) add_native(native, *from);
    if (auto* suspender = snapshotter.suspender()) add_stops(stops, suspender->stop_failures());
}

void RunTotals::add(const RunTotals& other) {
    add_snapshots(snapshots, other.snapshots);
    add_native(native, other.native);
    add_stops(stops, other.stops);
    add_async(async, other.async);
    async_used = async_used || other.async_used;
}

}  // namespace pysample::sampler
