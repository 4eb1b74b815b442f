// Callgrind's profile format (valgrind.org/docs/manual/cl-format.html), which KCachegrind,
// QCachegrind and callgrind_annotate read. One event, Samples. Each function gets its own samples
// (it was innermost) at the lines they were taken on, and a call record per function it called,
// costing the samples under that call.
//
// A sampler sees stacks, not calls, so a recursive function would count twice if every edge of a
// stack cost its samples. A sample costs only the call into each function's outermost frame: the
// calls into a function then cost the samples it is on the stack, once each, which is the
// inclusive cost callgrind_annotate shows (it sums a called function's incoming calls).

#include <algorithm>
#include <cstdint>
#include <map>
#include <string>
#include <tuple>
#include <vector>

#include "exporters/exporters.hpp"
#include "exporters/utf8.hpp"

namespace pysample::exporters {
namespace {

struct FunctionCosts {
    std::string file;
    std::string name;
    int first_line = 0;
    std::map<int, std::uint64_t> own;  // by line
    // By (the line of the call, the function called): samples under the call.
    std::map<std::pair<int, std::size_t>, std::uint64_t> calls;
};

class CallgrindTable {
public:
    CallgrindTable(const Profile& profile, const WriteOptions& options) : profile_(profile), options_(options) {}

    void add(const StackCount& stack) {
        if (stack.count == 0) return;
        frames_.clear();
        if (options_.thread_roots) frames_.push_back({thread_function(stack.thread), 0});
        for (FrameId id : stack.frames) frames_.push_back({function_of(id), line_of(profile_.frame(id))});
        if (frames_.empty()) return;
        auto [leaf, leaf_line] = frames_.back();
        functions_[leaf].own[leaf_line] += stack.count;
        for (std::size_t i = 1; i < frames_.size(); ++i) {
            if (called_below(i)) continue;
            auto [caller, line] = frames_[i - 1];
            functions_[caller].calls[{line, frames_[i].first}] += stack.count;
        }
        total_ += stack.count;
    }

    void write(std::ostream& out) const {
        const RunInfo& info = profile_.info;
        out << "# callgrind format\nversion: 1\ncreator: pysample";
        if (!options_.version.empty()) out << ' ' << options_.version;
        out << '\n';
        if (info.pid != 0) out << "pid: " << info.pid << '\n';
        if (!info.command_line.empty()) out << "cmd: " << one_line(info.command_line) << '\n';
        out << "positions: line\nevents: Samples\n";
        if (!info.counting.empty()) out << "# a sample counts " << info.counting << '\n';
        out << "summary: " << total_ << "\n\n";
        for (std::size_t index = 0; index < functions_.size(); ++index) {
            const FunctionCosts& function = functions_[index];
            if (function.own.empty() && function.calls.empty()) continue;
            out << "fl=" << file_ref(function.file) << "\nfn=" << function_ref(index) << '\n';
            for (const auto& [line, samples] : function.own) out << line << ' ' << samples << '\n';
            for (const auto& [where, samples] : function.calls) {
                const FunctionCosts& callee = functions_[where.second];
                out << "cfl=" << file_ref(callee.file) << "\ncfn=" << function_ref(where.second) << '\n';
                out << "calls=" << samples << ' ' << callee.first_line << '\n';
                out << where.first << ' ' << samples << '\n';
            }
            out << '\n';
        }
    }

private:
    static std::string one_line(std::string_view text) { return escape_control_characters(text); }

    int line_of(const Frame& frame) const {
        return options_.line_numbers && frame.line > 0 ? frame.line : std::max(frame.first_line, 0);
    }

    // Whether the function of frames_[i] is already on the stack below it.
    bool called_below(std::size_t i) const {
        return std::any_of(frames_.begin(), frames_.begin() + static_cast<std::ptrdiff_t>(i),
                           [&](const auto& below) { return below.first == frames_[i].first; });
    }

    std::size_t function_of(FrameId id) {
        if (by_frame_.size() <= id) by_frame_.resize(profile_.frames().size(), kUnset);
        if (by_frame_[id] != kUnset) return by_frame_[id];
        const Frame& frame = profile_.frame(id);
        std::string file = frame.filename.empty() ? "???" : one_line(frame.filename);
        return by_frame_[id] = intern(file, one_line(frame.function), frame.first_line);
    }

    std::size_t thread_function(std::uint32_t thread) {
        return intern("???", one_line(thread_label(profile_.threads()[thread])), 0);
    }

    // Functions of one name in one file are told apart by their first line.
    std::size_t intern(const std::string& file, const std::string& name, int first_line) {
        auto [it, added] = indices_.try_emplace(std::make_tuple(file, name, first_line), functions_.size());
        if (added) {
            auto& same_name = names_[{file, name}];
            std::string shown = same_name.empty() ? name : name + "'" + std::to_string(first_line);
            same_name.push_back(it->second);
            functions_.push_back({file, shown, first_line, {}, {}});
        }
        return it->second;
    }

    // Callgrind's name compression: "(id) name" the first time, "(id)" after.
    std::string file_ref(const std::string& file) const {
        auto [it, added] = file_ids_.try_emplace(file, file_ids_.size() + 1);
        std::string ref = "(" + std::to_string(it->second) + ")";
        return added ? ref + " " + file : ref;
    }
    std::string function_ref(std::size_t index) const {
        auto [it, added] = function_ids_.try_emplace(index, function_ids_.size() + 1);
        std::string ref = "(" + std::to_string(it->second) + ")";
        return added ? ref + " " + functions_[index].name : ref;
    }

    static constexpr std::size_t kUnset = static_cast<std::size_t>(-1);
    const Profile& profile_;
    const WriteOptions& options_;
    std::vector<std::pair<std::size_t, int>> frames_;  // (function, line), root first
    std::vector<std::size_t> by_frame_;
    std::map<std::tuple<std::string, std::string, int>, std::size_t> indices_;
    std::map<std::pair<std::string, std::string>, std::vector<std::size_t>> names_;
    std::vector<FunctionCosts> functions_;
    std::uint64_t total_ = 0;
    mutable std::map<std::string, std::size_t> file_ids_;
    mutable std::map<std::size_t, std::size_t> function_ids_;
};

}  // namespace

void write_callgrind(const Profile& profile, const WriteOptions& options, std::ostream& out) {
    CallgrindTable table(profile, options);
    for (const StackCount& stack : profile.stacks()) table.add(stack);
    table.write(out);
}

}  // namespace pysample::exporters
