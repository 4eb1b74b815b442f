#pragma once

// Per-function totals of a sampled profile in the shape cProfile reports them: shared by the
// pstats and text exporters.

#include <compare>
#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "exporters/profile.hpp"

namespace pysample::exporters::detail {

// A function as pstats names it: (filename, first line, name). Frames without a file are given
// cProfile's "~", 0 so pstats prints them by name alone, as it does built-ins.
struct FunctionKey {
    std::string filename;
    int line = 0;
    std::string function;

    auto operator<=>(const FunctionKey&) const = default;
};

struct SampleCounts {
    std::uint64_t own = 0;    // samples where the function (or edge's callee) is the innermost frame
    std::uint64_t total = 0;  // samples where it (or the edge) is on the stack, once per sample
};

using FunctionIndex = std::size_t;

struct FunctionStats {
    FunctionKey key;
    SampleCounts counts;
    std::map<FunctionIndex, SampleCounts> callers;  // by the caller's index in FunctionTable
};

struct FunctionTable {
    std::vector<FunctionStats> functions;  // in order of first appearance
    std::uint64_t samples = 0;             // samples with at least one frame
};

FunctionTable aggregate_functions(const Profile& profile);

// pstats' func_std_string: "file:line(function)", or the bare name for "~", 0 entries.
std::string function_label(const FunctionKey& key);

}  // namespace pysample::exporters::detail
