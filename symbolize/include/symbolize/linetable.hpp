#pragma once

#include <cstdint>
#include <span>

namespace pysample::symbolize {

// co_lnotab (up to 3.9; unsigned line deltas before 3.6, signed from 3.6), 3.10's co_linetable,
// the location table from 3.11. Which version uses which is the sampler's model's to say.
enum class LineTableFormat { Lnotab, Linetable310, LocationTable311 };

// Line of the instruction starting at `byte_offset` in the code's bytecode (bytes, not code units).
// A negative offset (frame not started yet) gives firstlineno. Returns -1 where the table says the
// instruction has no line. `signed_lnotab` only matters for Lnotab: false before 3.6.
// The table may come torn from another process: decoding never reads outside it and takes time
// linear in its size.
int line_for_offset(LineTableFormat format, std::span<const std::uint8_t> table, int firstlineno,
                    std::int64_t byte_offset, bool signed_lnotab = true);

// Where an instruction's source is, as a traceback underlines it: lines and 0-based UTF-8 byte
// columns, the end exclusive; -1 where unknown.
struct SourceLocation {
    int line = -1;
    int end_line = -1;
    int column = -1;
    int end_column = -1;
};

// The location table's (3.11+) full location of the instruction at `byte_offset`; all -1 when the
// table gives none.
SourceLocation location_for_offset(std::span<const std::uint8_t> table, int firstlineno, std::int64_t byte_offset);

}  // namespace pysample::symbolize
