#include "dwarf_lines.hpp"

#include <dwarf.h>
#include <fcntl.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <stdexcept>

namespace pysample::symbolize {

DwarfLines::DwarfLines(const std::string& path) : fd_(::open(path.c_str(), O_RDONLY | O_CLOEXEC)) {
    if (fd_.get() < 0) throw std::runtime_error("cannot open " + path + ": " + std::strerror(errno));
    dwarf_.reset(dwarf_begin(fd_.get(), DWARF_C_READ));
    if (!dwarf_) throw std::runtime_error("no DWARF in " + path + ": " + dwarf_errmsg(-1));
}

std::optional<SourceLine> DwarfLines::find(std::uint64_t link_address) {
    Dwarf_Die unit;
    if (!unit_containing(link_address, unit)) return std::nullopt;
    Dwarf_Line* row = dwarf_getsrc_die(&unit, link_address);
    if (row == nullptr) return std::nullopt;
    int line = 0;
    const char* file = dwarf_linesrc(row, nullptr, nullptr);
    if (dwarf_lineno(row, &line) != 0 || line <= 0 || file == nullptr) return std::nullopt;
    return SourceLine{file, line};
}

bool DwarfLines::unit_containing(std::uint64_t link_address, Dwarf_Die& unit) {
    if (dwarf_addrdie(dwarf_.get(), link_address, &unit) != nullptr) return true;
    // Without .debug_aranges (clang does not emit it by default) libdw cannot map an address to
    // its unit, so the units' own address ranges are indexed once.
    if (!units_indexed_) index_unit_ranges();
    auto after = std::upper_bound(units_.begin(), units_.end(), link_address,
                                  [](std::uint64_t address, const UnitRange& range) { return address < range.low; });
    if (after == units_.begin()) return false;
    const UnitRange& range = *std::prev(after);
    if (link_address >= range.high) return false;
    unit = range.unit;
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
        Dwarf_Addr base = 0;
        Dwarf_Addr low = 0;
        Dwarf_Addr high = 0;
        std::ptrdiff_t offset = 0;
        while ((offset = dwarf_ranges(&unit, offset, &base, &low, &high)) > 0) {
            if (low < high) units_.push_back({low, high, unit});
        }
    }
    std::sort(units_.begin(), units_.end(), [](const UnitRange& a, const UnitRange& b) { return a.low < b.low; });
}

}  // namespace pysample::symbolize
