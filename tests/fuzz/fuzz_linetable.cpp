// The line-table decoders over arbitrary tables, as a torn read of another process's code object
// may give them. Input: one byte choosing the format (and, for co_lnotab, whether line deltas are
// signed), firstlineno as 4 little-endian bytes, then the table. Every byte offset of the code the
// table describes is decoded, and a few past its end.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <span>

#include "symbolize/linetable.hpp"

using pysample::symbolize::line_for_offset;
using pysample::symbolize::LineTableFormat;

namespace {

constexpr std::size_t kHeaderBytes = 5;
// Offsets times table bytes: decoding is linear in the table, so this bounds one input's work.
constexpr std::size_t kWorkPerInput = std::size_t{1} << 17;

struct Input {
    LineTableFormat format = LineTableFormat::Lnotab;
    bool signed_lnotab = true;
    int firstlineno = 0;
    std::span<const std::uint8_t> table;
};

void require(bool condition) {
    if (!condition) std::abort();
}

Input parse_input(const std::uint8_t* data, std::size_t size) {
    Input input;
    constexpr LineTableFormat kFormats[] = {LineTableFormat::Lnotab, LineTableFormat::Linetable310,
                                            LineTableFormat::LocationTable311};
    input.format = kFormats[(data[0] & 3) % 3];
    input.signed_lnotab = (data[0] & 4) == 0;
    std::int32_t firstlineno = 0;
    std::memcpy(&firstlineno, data + 1, sizeof(firstlineno));
    input.firstlineno = firstlineno;
    input.table = {data + kHeaderBytes, size - kHeaderBytes};
    return input;
}

// The most code bytes a table of this size can describe: 255 per (length, delta) pair before
// 3.11, 16 per entry header from 3.11.
std::int64_t code_bytes_bound(const Input& input) {
    auto table_bytes = static_cast<std::int64_t>(input.table.size());
    return input.format == LineTableFormat::LocationTable311 ? table_bytes * 16 : table_bytes / 2 * 255;
}

int decode(const Input& input, std::int64_t offset) {
    return line_for_offset(input.format, input.table, input.firstlineno, offset, input.signed_lnotab);
}

void decode_code_range(const Input& input) {
    std::int64_t end = code_bytes_bound(input);
    auto affordable = static_cast<std::int64_t>(kWorkPerInput / (input.table.size() + 1));
    if (end > affordable) end = affordable;
    for (std::int64_t offset = 0; offset < end; offset += 2) {
        int line = decode(input, offset);
        // From 3.11 an entry covers whole 2-byte code units.
        if (input.format == LineTableFormat::LocationTable311) require(decode(input, offset + 1) == line);
    }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size < kHeaderBytes) return 0;
    const Input input = parse_input(data, size);
    // A frame that has not started yet is on its first line, whatever the table says.
    require(decode(input, -1) == input.firstlineno);
    require(decode(input, -2) == input.firstlineno);
    decode_code_range(input);
    const std::int64_t end = code_bytes_bound(input);
    (void)decode(input, end);
    (void)decode(input, end + 1);
    (void)decode(input, std::numeric_limits<std::int64_t>::max());
    return 0;
}
