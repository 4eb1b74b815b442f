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

}  // namespace pysample::symbolize
