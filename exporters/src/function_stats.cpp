#include "function_stats.hpp"

#include <algorithm>
#include <utility>

#include "exporters/utf8.hpp"

namespace pysample::exporters::detail {
namespace {

FunctionKey key_of(const Frame& frame) {
    if (frame.filename.empty()) return {"~", 0, valid_utf8(frame.function)};
    return {valid_utf8(frame.filename), frame.first_line, valid_utf8(frame.plain_name())};
}

// Maps every interned frame to its function; frames differing only in the sampled line share one.
std::vector<FunctionIndex> index_frames(const Profile& profile, FunctionTable& table) {
    std::map<FunctionKey, FunctionIndex> indices;
    std::vector<FunctionIndex> by_frame;
    by_frame.reserve(profile.frames().size());
    for (const Frame& frame : profile.frames()) {
        FunctionKey key = key_of(frame);
        auto [it, inserted] = indices.try_emplace(key, table.functions.size());
        if (inserted) table.functions.push_back({std::move(key), {}, {}});
        by_frame.push_back(it->second);
    }
    return by_frame;
}

void count_functions(const std::vector<FunctionIndex>& stack, std::uint64_t count, FunctionTable& table) {
    std::vector<FunctionIndex> distinct = stack;
    std::sort(distinct.begin(), distinct.end());
    distinct.erase(std::unique(distinct.begin(), distinct.end()), distinct.end());
    for (FunctionIndex function : distinct) table.functions[function].counts.total += count;
    table.functions[stack.back()].counts.own += count;
}

void count_edges(const std::vector<FunctionIndex>& stack, std::uint64_t count, FunctionTable& table) {
    std::vector<std::pair<FunctionIndex, FunctionIndex>> edges;
    for (std::size_t i = 1; i < stack.size(); ++i) edges.emplace_back(stack[i - 1], stack[i]);
    std::sort(edges.begin(), edges.end());
    edges.erase(std::unique(edges.begin(), edges.end()), edges.end());
    for (auto [caller, callee] : edges) table.functions[callee].callers[caller].total += count;
    if (stack.size() >= 2) {
        FunctionIndex leaf = stack.back();
        table.functions[leaf].callers[stack[stack.size() - 2]].own += count;
    }
}

}  // namespace

FunctionTable aggregate_functions(const Profile& profile) {
    FunctionTable table;
    const std::vector<FunctionIndex> by_frame = index_frames(profile, table);
    std::vector<FunctionIndex> stack;
    for (const StackCount& sampled : profile.stacks()) {
        if (sampled.frames.empty() || sampled.count == 0) continue;
        stack.clear();
        for (FrameId id : sampled.frames) stack.push_back(by_frame[id]);
        count_functions(stack, sampled.count, table);
        count_edges(stack, sampled.count, table);
        table.samples += sampled.count;
    }
    // Frames interned but never sampled (none in practice) would print as empty rows.
    std::vector<FunctionIndex> renumbered(table.functions.size());
    std::vector<FunctionStats> kept;
    for (FunctionIndex i = 0; i < table.functions.size(); ++i) {
        renumbered[i] = kept.size();
        if (table.functions[i].counts.total > 0) kept.push_back(std::move(table.functions[i]));
    }
    for (FunctionStats& function : kept) {
        std::map<FunctionIndex, SampleCounts> callers;
        for (const auto& [caller, counts] : function.callers) callers[renumbered[caller]] = counts;
        function.callers = std::move(callers);
    }
    table.functions = std::move(kept);
    return table;
}

std::string function_label(const FunctionKey& key) {
    if (key.filename == "~" && key.line == 0) {
        const std::string& name = key.function;
        if (name.size() >= 2 && name.front() == '<' && name.back() == '>') {
            return "{" + name.substr(1, name.size() - 2) + "}";
        }
        return name;
    }
    return key.filename + ":" + std::to_string(key.line) + "(" + key.function + ")";
}

}  // namespace pysample::exporters::detail
