#include "engine/native_stack.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <array>
#include <cstdio>

namespace pysample::sampler {
namespace {

// Deep enough for a recursion limit's worth of pre-3.11 evaluation calls.
constexpr std::uint64_t kMaxStackCopy = 2 * 1024 * 1024;
constexpr std::uint64_t kRedZone = 128;

// The interpreter's own call machinery between Python frames and around C functions: what a
// call from Python to Python or to a builtin passes through. Matched on the name up to any
// compiler suffix (`.cold`, `.isra.0`).
constexpr std::array<std::string_view, 34> kPlumbingPrefixes = {
    "_PyEval_",
    "PyEval_",
    "_PyFunction_Vectorcall",
    "_PyObject_Vectorcall",
    "PyObject_Vectorcall",
    "_PyObject_Call",
    "PyObject_Call",
    "_PyObject_MakeTpCall",
    "_PyObject_FastCall",
    "PyVectorcall_Call",
    "_PyVectorcall_Call",
    "method_vectorcall",
    "cfunction_vectorcall",
    "cfunction_call",
    "vectorcall_method",
    "slot_tp_call",
    "function_code_fastcall",
    "call_function",
    "fast_function",
    "_PyCFunction_FastCall",
    "PyCFunction_Call",
    "do_call_core",
    "_PyMethodDef_RawFastCall",
    "method_call",
    "_PyFunction_FastCall",
    "PyObject_CallObject",
    "gen_send_ex",
    "gen_iternext",
    "_PyGen_Send",
    "ext_do_call",
    "_Py_call_instrumentation",
    "function_call",
    "instancemethod_call",
    "_Py_VectorCall",
};

std::string_view base_name(std::string_view function) {
    auto dot = function.find('.');
    return dot == std::string_view::npos ? function : function.substr(0, dot);
}

// Build directories make absolute paths long and say little: keep the file and its directory.
std::string_view short_source_path(std::string_view path) {
    if (path.starts_with("./")) path.remove_prefix(2);
    if (!path.starts_with("/")) return path;
    auto last = path.rfind('/');
    auto before = last == 0 ? std::string_view::npos : path.rfind('/', last - 1);
    return before == std::string_view::npos ? path.substr(last + 1) : path.substr(before + 1);
}

}  // namespace

std::string_view describe(MergeResult result) {
    switch (result) {
        case MergeResult::Merged: return "merged";
        case MergeResult::NoRegisters: return "registers unreadable";
        case MergeResult::StackCopy: return "stack memory not copied";
        case MergeResult::Unwind: return "native stack not unwound";
        case MergeResult::MoreEvalCalls: return "evaluation call without Python frames";
        case MergeResult::FewerEvalCalls: return "Python frames without an evaluation call";
        case MergeResult::CutStack: return "Python stack cut in the middle";
    }
    return "unknown";
}

NativeStacks::NativeStacks(PythonProcess& process, bool show_all)
    : process_(process),
      show_all_(show_all),
      eval_function_(process.facts().eval_function),
      modules_(process.target()),
      unwinder_(modules_, process.memory()),
      symbols_(modules_) {}

void NativeStacks::capture(pid_t tid, NativeCapture& out) {
    out.ok = false;
    auto registers = process_.target().registers(tid);
    if (!registers) return;
    out.registers = *registers;
    std::uint64_t sp = registers->sp();
    const auto* mapping = modules_.mapping(sp);
    if (mapping == nullptr) {
        out.stack.bytes.clear();
        out.ok = true;  // unwinding will say what was missing
        return;
    }
    // The red zone below the stack pointer is copied too: in an epilogue the unwind tables still
    // locate registers in the slots just popped from there.
    std::uint64_t start = std::max(mapping->start, sp - std::min<std::uint64_t>(sp, kRedZone));
    std::uint64_t size = std::min(mapping->end - start, kMaxStackCopy);
    out.stack.start = start;
    out.stack.bytes.resize(size);
    if (!process_.memory().read(start, out.stack.bytes.data(), size)) out.stack.bytes.clear();
    stats_.copied_bytes += out.stack.bytes.size();
    out.ok = true;
}

MergeResult NativeStacks::count(MergeResult result, std::string_view detail) {
    if (result == MergeResult::Merged) {
        ++stats_.merged;
        return result;
    }
    ++stats_.not_merged;
    std::string reason(describe(result));
    if (!detail.empty()) reason += " (" + std::string(detail) + ")";
    ++stats_.reasons[reason];
    return result;
}

bool NativeStacks::is_eval_function(const symbolize::NativeFrameInfo& info) const {
    return base_name(info.function) == eval_function_ && info.module_path == process_.binary_path();
}

bool NativeStacks::is_hidden_plumbing(const symbolize::NativeFrameInfo& info) const {
    if (info.module_path != process_.binary_path()) return false;
    std::string_view name = base_name(info.function);
    return std::any_of(kPlumbingPrefixes.begin(), kPlumbingPrefixes.end(),
                       [&](std::string_view prefix) { return name.starts_with(prefix); });
}

// Process and thread start-up below the outermost Python frame, and the interpreter's call
// machinery, say nothing about where the program spends its time.
void NativeStacks::drop_hidden_frames(std::vector<PyFrame>& frames) const {
    auto outermost_python = std::find_if(frames.rbegin(), frames.rend(), [](const PyFrame& f) { return f.code; });
    if (outermost_python != frames.rend()) frames.erase(outermost_python.base(), frames.end());
    std::erase_if(frames, [&](const PyFrame& f) { return f.native != nullptr && is_hidden_plumbing(*f.native); });
}

void NativeStacks::log_unmerged(const EvalCalls& calls, const std::vector<PyFrame>& frames) {
    if (!spdlog::should_log(spdlog::level::debug)) return;
    std::string native;
    for (std::size_t i = 0; i < pcs_.size(); ++i) {
        const auto& info = symbols_.lookup(i == 0 ? pcs_[i] : pcs_[i] - 1);
        native += fmt::format(" {}@{:#x}({})", info.function, pcs_[i], info.module);
    }
    std::string python;
    for (const auto& frame : frames) python += " " + (frame.code ? frame.code->function : std::string("?"));
    std::string ends;
    for (auto end : calls.ends) ends += " " + std::to_string(end);
    spdlog::debug("pid {}: native and Python stacks disagree; native (innermost first):{}; Python:{}; calls end at:{}",
                  process_.pid(), native, python, ends);
}

MergeResult NativeStacks::merge(const NativeCapture& capture, const EvalCalls& calls, std::vector<PyFrame>& frames,
                                bool switches_stacks) {
    if (calls.cut) return count(MergeResult::CutStack);
    if (!capture.ok) return count(MergeResult::NoRegisters);
    if (capture.stack.bytes.empty()) return count(MergeResult::StackCopy);
    auto unwound = unwinder_.unwind(capture.registers, capture.stack, pcs_);
    if (unwound != symbolize::UnwindResult::Ok) {
        log_unmerged(calls, frames);
        return count(MergeResult::Unwind, symbolize::describe(unwound));
    }

    infos_.clear();
    std::size_t eval_frames = 0;
    for (std::size_t i = 0; i < pcs_.size(); ++i) {
        // A caller's return address may already belong to the next line or function.
        infos_.push_back(&symbols_.lookup(i == 0 ? pcs_[i] : pcs_[i] - 1));
        if (is_eval_function(*infos_.back())) ++eval_frames;
    }
    // The innermost evaluation call can be caught before it links its first frame into the
    // thread's chain or after it unlinked its last: it then runs no Python frame. No other call
    // can be in that state, since the calls inside it were made from its frames.
    bool innermost_call_empty = eval_frames == calls.ends.size() + 1;
    // A thread that switches between stacks of its own (greenlets) runs the current one's frames
    // in its innermost calls; the outer calls run the frames of the stack that switched to it,
    // which the thread's chain no longer links: they stay as native frames.
    std::size_t outer_calls_unlinked = 0;
    if (switches_stacks && eval_frames > calls.ends.size()) {
        outer_calls_unlinked = eval_frames - calls.ends.size();
        innermost_call_empty = false;
    }

    merged_.clear();
    std::size_t call = 0;
    std::uint32_t begin = 0;
    std::size_t evals_seen = 0;
    for (const auto* info : infos_) {
        bool eval = is_eval_function(*info);
        if (eval) ++evals_seen;
        if (!eval || innermost_call_empty || evals_seen > eval_frames - outer_calls_unlinked) {
            if (eval) innermost_call_empty = false;
            merged_.push_back({nullptr, 0, info});
            continue;
        }
        if (call >= calls.ends.size()) {
            log_unmerged(calls, frames);
            return count(MergeResult::MoreEvalCalls);
        }
        std::uint32_t end = std::min<std::uint32_t>(calls.ends[call], static_cast<std::uint32_t>(frames.size()));
        for (std::uint32_t k = begin; k < end; ++k) merged_.push_back(frames[k]);
        begin = std::max(begin, end);
        ++call;
    }
    if (call != calls.ends.size() || begin != frames.size()) {
        log_unmerged(calls, frames);
        return count(MergeResult::FewerEvalCalls);
    }
    if (!show_all_) drop_hidden_frames(merged_);
    frames.swap(merged_);
    return count(MergeResult::Merged);
}

bool waits_in_native_call(const NativeCapture& capture, const std::vector<PyFrame>& innermost_first) {
    if (!capture.ok || capture.registers.syscall < 0) return false;
    static constexpr std::array<std::string_view, 18> kWaits = {
        "nanosleep",
        "clock_nanosleep",
        "select",
        "__select",
        "pselect",
        "poll",
        "ppoll",
        "__poll",
        "epoll_wait",
        "epoll_pwait",
        "pthread_cond_wait",
        "pthread_cond_timedwait",
        "pthread_cond_clockwait",
        "sem_wait",
        "sem_timedwait",
        "sem_clockwait",
        "__futex_abstimed_wait_common",
        "futex_wait",
    };
    // libc's own system-call helpers may sit above the call itself.
    constexpr std::size_t kTopFrames = 3;
    for (std::size_t i = 0; i < innermost_first.size() && i < kTopFrames; ++i) {
        const auto* native = innermost_first[i].native;
        if (native == nullptr) return false;
        std::string_view name = base_name(native->function);
        if (std::find(kWaits.begin(), kWaits.end(), name) != kWaits.end()) return true;
    }
    return false;
}

exporters::Frame profile_frame(const symbolize::NativeFrameInfo& info, bool line_numbers) {
    exporters::Frame frame;
    if (info.unnamed_function) {
        // One frame per function the unwind tables bound, named by where it starts.
        char start[32];
        std::snprintf(start, sizeof(start), "+0x%llx", static_cast<unsigned long long>(info.module_offset));
        frame.function = info.module + start;
        frame.filename = info.module;
        return frame;
    }
    frame.function = info.function.empty() ? "[unknown]" : info.function;
    if (!info.source_file.empty() && info.line > 0) {
        frame.filename = std::string(short_source_path(info.source_file));
        frame.line = line_numbers ? info.line : 0;
        return frame;
    }
    frame.filename = info.module.empty() ? "[anonymous]" : info.module;
    if (line_numbers) {
        char offset[32];
        std::snprintf(offset, sizeof(offset), "+0x%llx", static_cast<unsigned long long>(info.module_offset));
        frame.filename += offset;
    }
    return frame;
}

}  // namespace pysample::sampler
