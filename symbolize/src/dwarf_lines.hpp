// Source file and line of link-time addresses, from the DWARF of one ELF file.
#pragma once

#include <elfutils/libdw.h>
#include <unistd.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "attach/file_descriptor.hpp"

namespace pysample::symbolize {

struct SourceLine {
    std::string file;  // as recorded in the unit's file table
    int line = 0;
};

// Keeps the file open with libdw for repeated queries.
class DwarfLines {
public:
    // Throws std::runtime_error naming the path when the file cannot be opened or has no DWARF.
    explicit DwarfLines(const std::string& path);

    // For code inlined into a function, the position of the outermost inlined call in that
    // function rather than the line table's position in the inlined code.
    std::optional<SourceLine> find(std::uint64_t link_address);

private:
    struct DieRange {
        std::uint64_t low = 0;
        std::uint64_t high = 0;  // one past the end
        Dwarf_Die die;
    };
    using DieRanges = std::vector<DieRange>;  // sorted by low

    static const DieRange* range_containing(const DieRanges& ranges, std::uint64_t link_address);
    bool unit_containing(std::uint64_t link_address, Dwarf_Die& unit);
    void index_unit_ranges();
    std::optional<SourceLine> inlined_call_site(Dwarf_Die& unit, std::uint64_t link_address);
    bool function_containing(Dwarf_Die& unit, std::uint64_t link_address, Dwarf_Die& function);
    static DieRanges function_ranges(Dwarf_Die& unit);
    static DieRanges inlined_call_ranges(Dwarf_Die& function);
    static void sort_by_low(DieRanges& ranges);

    struct DwarfEnd {
        void operator()(Dwarf* dwarf) const { dwarf_end(dwarf); }
    };

    attach::FileDescriptor fd_;  // declared before dwarf_, which reads through it until dwarf_end
    std::unique_ptr<Dwarf, DwarfEnd> dwarf_;
    bool units_indexed_ = false;
    DieRanges units_;
    // Indexed on first use: functions by the offset of their unit, the outermost inlined calls in
    // a function by the offset of the function.
    std::unordered_map<Dwarf_Off, DieRanges> functions_;
    std::unordered_map<Dwarf_Off, DieRanges> inlined_calls_;
};

}  // namespace pysample::symbolize
