// Snapshots of threads become the profile's stacks: frames interned once, and a thread whose stack
// is the same as in its previous sample (the common case) counted without building it again.
#pragma once

#include <cstdint>
#include <string>
#include <unordered_map>
#include <vector>

#include "engine/snapshot.hpp"
#include "exporters/profile.hpp"

namespace pysample::sampler {

class ProfileStacks {
public:
    // `line_numbers`: frames keep their lines (else 0). `thread_roots`: under a process's root frame,
    // each stack starts with its thread's (the writers cannot add it there).
    ProfileStacks(exporters::Profile& profile, bool line_numbers, bool thread_roots);

    // The stacks of one process: its root frame, if it has one, and each thread's last stack.
    struct Process {
        bool has_root = false;
        exporters::FrameId root = 0;
        struct LastStack {
            std::vector<std::uint64_t> key;
            std::string name;
            exporters::StackId stack = 0;
            std::uint64_t version = 0;  // ThreadSnapshot::stack_version
        };
        std::unordered_map<std::uint64_t, LastStack> last_stacks;
    };

    // Counts `samples` of the thread's stack at `time_us`; returns the stack's id.
    exporters::StackId add(Process& process, const ThreadSnapshot& thread, std::uint64_t time_us,
                           std::uint64_t samples);

private:
    int recorded_line(const PyFrame& frame) const { return line_numbers_ && frame.line > 0 ? frame.line : 0; }
    std::uint64_t frame_key(const PyFrame& frame) const;
    bool stack_key(const ThreadSnapshot& thread, std::vector<std::uint64_t>& key) const;
    exporters::FrameId python_frame_id(const PyFrame& frame);

    static constexpr std::size_t kMaxRememberedThreads = 4096;

    exporters::Profile& profile_;
    bool line_numbers_;
    bool thread_roots_;
    std::vector<exporters::FrameId> stack_;
    std::vector<std::uint64_t> key_;
    std::unordered_map<std::uint64_t, exporters::FrameId> python_frames_;
};

}  // namespace pysample::sampler
