// Native stacks in native mode: captured while a thread is stopped, unwound and symbolized after
// it resumes, and merged with the thread's Python frames.
#pragma once

#include <sys/types.h>

#include <map>
#include <string_view>
#include <vector>

#include "attach/registers.hpp"
#include "exporters/profile.hpp"
#include "model/python_process.hpp"
#include "model/stack_walker.hpp"
#include "symbolize/modules.hpp"
#include "symbolize/native_symbols.hpp"
#include "symbolize/native_unwind.hpp"

namespace pysample::sampler {

// What a stopped thread's native stack needs: its registers and the used part of its stack.
struct NativeCapture {
    bool ok = false;
    attach::Registers registers;
    symbolize::StackCopy stack;
};

enum class MergeResult {
    Merged,
    NoRegisters,     // the thread could not be stopped or its registers read
    StackCopy,       // its stack memory could not be copied
    Unwind,          // the native stack did not unwind to its outermost frame
    MoreEvalCalls,   // the native stack has evaluation calls the Python frames do not account for
    FewerEvalCalls,  // Python frames that no native evaluation call runs
    CutStack         // the Python stack was too deep to keep whole
};
std::string_view describe(MergeResult result);

struct NativeStats {
    std::uint64_t merged = 0;
    std::uint64_t not_merged = 0;
    std::map<std::string, std::uint64_t> reasons;
    std::uint64_t copied_bytes = 0;
};

class NativeStacks {
public:
    // `show_all`: keep the interpreter's own call machinery and the frames below the outermost
    // Python frame (process and thread start-up), hidden by default.
    NativeStacks(PythonProcess& process, bool show_all);

    // Frames merged in earlier samples may point to symbols dropped here.
    void begin_sample() { symbols_.trim(); }
    // Call with `tid` stopped.
    void capture(pid_t tid, NativeCapture& out);
    // Call after resuming. Replaces `frames` (Python frames, innermost first) by the merged stack;
    // when the stacks cannot be merged, leaves `frames` as they are and says why.
    // `switches_stacks`: the thread was seen running more than one stack of its own (greenlets).
    MergeResult merge(const NativeCapture& capture, const EvalCalls& calls, std::vector<PyFrame>& frames,
                      bool switches_stacks = false);

    const NativeStats& stats() const { return stats_; }

private:
    bool is_eval_function(const symbolize::NativeFrameInfo& info) const;
    bool is_hidden_plumbing(const symbolize::NativeFrameInfo& info) const;
    void drop_hidden_frames(std::vector<PyFrame>& frames) const;
    MergeResult count(MergeResult result, std::string_view detail = {});
    void log_unmerged(const EvalCalls& calls, const std::vector<PyFrame>& frames);

    PythonProcess& process_;
    bool show_all_;
    std::string_view eval_function_;
    symbolize::ModuleMap modules_;
    symbolize::NativeUnwinder unwinder_;
    symbolize::NativeSymbolizer symbols_;
    std::vector<std::uint64_t> pcs_;
    std::vector<const symbolize::NativeFrameInfo*> infos_;
    std::vector<PyFrame> merged_;
    NativeStats stats_;
};

// True when the thread was stopped inside a system call made by a function that waits (sleep,
// select, poll, a lock or condition variable): it went to wait after its scheduler state was read.
bool waits_in_native_call(const NativeCapture& capture, const std::vector<PyFrame>& innermost_first);

// A native frame as the profile shows it: `function (file:line)` with debug information, else
// `function (library+0xoffset)`; without line numbers just `function (library)`.
exporters::Frame profile_frame(const symbolize::NativeFrameInfo& info, bool line_numbers);

}  // namespace pysample::sampler
