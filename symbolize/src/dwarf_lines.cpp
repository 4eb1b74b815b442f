#include "dwarf_lines.hpp"

#include <dwarf.h>
#include <fcntl.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <limits>
#include <stdexcept>

namespace pysample::symbolize {
namespace {

template <typename Visit>
void for_each_code_range(Dwarf_Die& die, Visit visit) {
    Dwarf_Addr base = 0;
    Dwarf_Addr low = 0;
    Dwarf_Addr high = 0;
    std::ptrdiff_t offset = 0;
    while ((offset = dwarf_ranges(&die, offset, &base, &low, &high)) > 0) {
        if (low < high) visit(low, high);
    }
}

// Out-of-line functions are children of their unit, or of namespaces in C++.
template <typename Visit>
void for_each_function(Dwarf_Die& scope, Visit visit) {
    Dwarf_Die child;
    if (dwarf_child(&scope, &child) != 0) return;
    do {
        switch (dwarf_tag(&child)) {
            case DW_TAG_subprogram: visit(child); break;
            case DW_TAG_namespace: for_each_function(child, visit); break;
            default: break;
        }
    } while (dwarf_siblingof(&child, &child) == 0);
}

bool is_block(int tag) {
    return tag == DW_TAG_lexical_block || tag == DW_TAG_try_block || tag == DW_TAG_catch_block ||
           tag == DW_TAG_with_stmt;
}

// The inlined instances directly in `scope` or in its blocks, not those inlined into them.
template <typename Visit>
void for_each_outermost_inlined(Dwarf_Die& scope, Visit visit) {
    Dwarf_Die child;
    if (dwarf_child(&scope, &child) != 0) return;
    do {
        int tag = dwarf_tag(&child);
        if (tag == DW_TAG_inlined_subroutine) {
            visit(child);
        } else if (is_block(tag)) {
            for_each_outermost_inlined(child, visit);
        }
    } while (dwarf_siblingof(&child, &child) == 0);
}

const char* file_of_unit(Dwarf_CU* cu, Dwarf_Word index) {
    Dwarf_Die unit;
    Dwarf_Half version = 0;
    if (dwarf_cu_die(cu, &unit, &version, nullptr, nullptr, nullptr, nullptr, nullptr) == nullptr) return nullptr;
    // Before DWARF 5 file numbers start at 1, and libdw puts a placeholder at 0.
    if (index == 0 && version < 5) return nullptr;
    Dwarf_Files* files = nullptr;
    std::size_t count = 0;
    if (dwarf_getsrcfiles(&unit, &files, &count) != 0 || index >= count) return nullptr;
    return dwarf_filesrc(files, index, nullptr, nullptr);
}

std::optional<SourceLine> call_site_of(Dwarf_Die& inlined) {
    Dwarf_Attribute line_attribute;
    Dwarf_Word line = 0;
    if (dwarf_formudata(dwarf_attr_integrate(&inlined, DW_AT_call_line, &line_attribute), &line) != 0 || line == 0 ||
        line > static_cast<Dwarf_Word>(std::numeric_limits<int>::max())) {
        return std::nullopt;
    }
    Dwarf_Attribute file_attribute;
    Dwarf_Word file_index = 0;
    Dwarf_Attribute* file = dwarf_attr_integrate(&inlined, DW_AT_call_file, &file_attribute);
    if (dwarf_formudata(file, &file_index) != 0) return std::nullopt;
    // The file number indexes the file table of the unit holding the attribute, which is another
    // unit's when it was read through an abstract origin there.
    const char* name = file_of_unit(file->cu, file_index);
    if (name == nullptr) return std::nullopt;
    return SourceLine{name, static_cast<int>(line)};
}

std::optional<SourceLine> line_table_row(Dwarf_Die& unit, std::uint64_t link_address) {
    Dwarf_Line* row = dwarf_getsrc_die(&unit, link_address);
    if (row == nullptr) return std::nullopt;
    int line = 0;
    const char* file = dwarf_linesrc(row, nullptr, nullptr);
    if (dwarf_lineno(row, &line) != 0 || line <= 0 || file == nullptr) return std::nullopt;
    return SourceLine{file, line};
}

}  // namespace

DwarfLines::DwarfLines(const std::string& path) : fd_(::open(path.c_str(), O_RDONLY | O_CLOEXEC)) {
    if (fd_.get() < 0) throw std::runtime_error("cannot open " + path + ": " + std::strerror(errno));
    dwarf_.reset(dwarf_begin(fd_.get(), DWARF_C_READ));
    if (!dwarf_) throw std::runtime_error("no DWARF in " + path + ": " + dwarf_errmsg(-1));
}

std::optional<SourceLine> DwarfLines::find(std::uint64_t link_address) {
    Dwarf_Die unit;
    if (!unit_containing(link_address, unit)) return std::nullopt;
    if (auto call = inlined_call_site(unit, link_address)) return call;
    return line_table_row(unit, link_address);
}

const DwarfLines::DieRange* DwarfLines::range_containing(const DieRanges& ranges, std::uint64_t link_address) {
    auto after = std::upper_bound(ranges.begin(), ranges.end(), link_address,
                                  [](std::uint64_t address, const DieRange& range) { return address < range.low; });
    if (after == ranges.begin()) return nullptr;
    const DieRange& range = *std::prev(after);
    return link_address < range.high ? &range : nullptr;
}

bool DwarfLines::unit_containing(std::uint64_t link_address, Dwarf_Die& unit) {
    if (dwarf_addrdie(dwarf_.get(), link_address, &unit) != nullptr) return true;
    // Without .debug_aranges (clang does not emit it by default) libdw cannot map an address to
    // its unit, so the units' own address ranges are indexed once.
    if (!units_indexed_) index_unit_ranges();
    const DieRange* range = range_containing(units_, link_address);
    if (range == nullptr) return false;
    unit = range->die;
    return true;
}

void DwarfLines::index_unit_ranges() {
    units_indexed_ = true;
    Dwarf_CU* cu = nullptr;
    Dwarf_CU* next = nullptr;
    Dwarf_Half version = 0;
    std::uint8_t unit_type = 0;
    Dwarf_Die unit;
    while (dwarf_get_units(dwarf_.get(), cu, &next, &version, &unit_type, &unit, nullptr) == 0) {
        cu = next;
        if (unit_type != DW_UT_compile && unit_type != DW_UT_partial && unit_type != DW_UT_skeleton) continue;
        for_each_code_range(unit, [&](Dwarf_Addr low, Dwarf_Addr high) { units_.push_back({low, high, unit}); });
    }
    sort_by_low(units_);
}

// dwarf_getscopes would find the inlined instances too, but it walks the whole unit on every call
// (close to a millisecond in a large unit) and, past the innermost inlined instance, lists the scopes of
// the inlined function's definition instead of the instances that enclose it.
std::optional<SourceLine> DwarfLines::inlined_call_site(Dwarf_Die& unit, std::uint64_t link_address) {
    Dwarf_Die function;
    if (!function_containing(unit, link_address, function)) return std::nullopt;
    auto [entry, added] = inlined_calls_.try_emplace(dwarf_dieoffset(&function));
    if (added) entry->second = inlined_call_ranges(function);
    const DieRange* call = range_containing(entry->second, link_address);
    if (call == nullptr) return std::nullopt;
    Dwarf_Die inlined = call->die;
    return call_site_of(inlined);
}

bool DwarfLines::function_containing(Dwarf_Die& unit, std::uint64_t link_address, Dwarf_Die& function) {
    auto [entry, added] = functions_.try_emplace(dwarf_dieoffset(&unit));
    if (added) entry->second = function_ranges(unit);
    const DieRange* range = range_containing(entry->second, link_address);
    if (range == nullptr) return false;
    function = range->die;
    return true;
}

DwarfLines::DieRanges DwarfLines::function_ranges(Dwarf_Die& unit) {
    DieRanges ranges;
    for_each_function(unit, [&](Dwarf_Die& function) {
        for_each_code_range(function, [&](Dwarf_Addr low, Dwarf_Addr high) {
            ranges.push_back({low, high, function});
        });
    });
    sort_by_low(ranges);
    return ranges;
}

DwarfLines::DieRanges DwarfLines::inlined_call_ranges(Dwarf_Die& function) {
    DieRanges ranges;
    for_each_outermost_inlined(function, [&](Dwarf_Die& inlined) {
        for_each_code_range(inlined, [&](Dwarf_Addr low, Dwarf_Addr high) { ranges.push_back({low, high, inlined}); });
    });
    sort_by_low(ranges);
    return ranges;
}

void DwarfLines::sort_by_low(DieRanges& ranges) {
    std::sort(ranges.begin(), ranges.end(), [](const DieRange& a, const DieRange& b) { return a.low < b.low; });
}

}  // namespace pysample::symbolize
