#include "symbolize/linetable.hpp"

#include <cstddef>
#include <limits>
#include <optional>

namespace pysample::symbolize {
namespace {

using Table = std::span<const std::uint8_t>;

constexpr int kNoLine = -1;

// Lines are accumulated in 64 bits so a garbage table cannot overflow; a result outside int
// cannot be a real line.
int to_line(std::int64_t line) {
    if (line < std::numeric_limits<int>::min() || line > std::numeric_limits<int>::max()) {
        return kNoLine;
    }
    return static_cast<int>(line);
}

int signed_byte(std::uint8_t byte) { return static_cast<std::int8_t>(byte); }

// Up to 3.9 (co_lnotab): pairs of (address increment, line increment), as PyCode_Addr2Line
// reads them. The line increment is a signed byte from 3.6, unsigned before.
int lnotab_line(Table table, int firstlineno, std::int64_t offset, bool signed_deltas) {
    std::int64_t line = firstlineno;
    std::int64_t address = 0;
    for (std::size_t i = 0; i + 1 < table.size(); i += 2) {
        address += table[i];
        if (address > offset) {
            break;
        }
        line += signed_deltas ? signed_byte(table[i + 1]) : table[i + 1];
    }
    return to_line(line);
}

// 3.10 (co_linetable): each pair (length in bytes, line delta) is one address range following
// the previous one. A delta of -128 marks the range as having no line and leaves the running line
// unchanged. Empty ranges still apply their delta.
constexpr int kNoLineDelta310 = -128;

int linetable310_line(Table table, int firstlineno, std::int64_t offset) {
    std::int64_t line = firstlineno;
    std::int64_t range_end = 0;
    for (std::size_t i = 0; i + 1 < table.size(); i += 2) {
        range_end += table[i];
        const int delta = signed_byte(table[i + 1]);
        if (delta != kNoLineDelta310) {
            line += delta;
        }
        if (offset < range_end) {
            return delta == kNoLineDelta310 ? kNoLine : to_line(line);
        }
    }
    return kNoLine;
}

// 3.11+ (co_linetable, Objects/locations.md): entries begin with a byte with bit 7 set, holding
// a kind and a length in code units; the bytes after it, up to the next such byte, are its data.
constexpr std::uint8_t kEntryStartBit = 0x80;
constexpr int kCodeUnitBytes = 2;
constexpr int kKindNoLocation = 15;
constexpr int kKindLong = 14;
constexpr int kKindNoColumns = 13;
constexpr int kKindOneLine0 = 10;
constexpr int kKindOneLine2 = 12;

bool is_entry_start(std::uint8_t byte) { return (byte & kEntryStartBit) != 0; }

int entry_kind(std::uint8_t header) { return (header >> 3) & 15; }

int entry_bytes(std::uint8_t header) { return ((header & 7) + 1) * kCodeUnitBytes; }

std::size_t next_entry_start(Table table, std::size_t pos) {
    while (pos < table.size() && !is_entry_start(table[pos])) {
        ++pos;
    }
    return pos;
}

// 6-bit chunks, least significant first, bit 6 meaning another chunk follows. Reads only `data`;
// chunks past 32 bits are dropped since no real line delta needs them.
std::uint32_t read_varint(Table data) {
    std::uint32_t value = 0;
    unsigned shift = 0;
    for (const std::uint8_t byte : data) {
        if (shift < 32) {
            value |= static_cast<std::uint32_t>(byte & 63) << shift;
        }
        shift += 6;
        if ((byte & 64) == 0) {
            break;
        }
    }
    return value;
}

std::int64_t read_signed_varint(Table data) {
    const std::uint32_t value = read_varint(data);
    const auto magnitude = static_cast<std::int64_t>(value >> 1);
    return (value & 1) != 0 ? -magnitude : magnitude;
}

std::int64_t entry_line_delta(int kind, Table data) {
    if (kind == kKindLong || kind == kKindNoColumns) {
        return read_signed_varint(data);
    }
    if (kind >= kKindOneLine0 && kind <= kKindOneLine2) {
        return kind - kKindOneLine0;
    }
    return 0;  // short forms and "no location"
}

// The entry covering `offset`, with the line it starts; nullopt past the table's end or for a
// table that does not start with an entry.
struct LocationEntry {
    int kind = kKindNoLocation;
    Table data;
    std::int64_t line = 0;
};

std::optional<LocationEntry> entry_at(Table table, int firstlineno, std::int64_t offset) {
    if (table.empty() || !is_entry_start(table[0])) return std::nullopt;
    std::int64_t line = firstlineno;
    std::int64_t range_end = 0;
    std::size_t pos = 0;
    while (pos < table.size()) {
        const std::uint8_t header = table[pos];
        const std::size_t data_end = next_entry_start(table, pos + 1);
        const int kind = entry_kind(header);
        Table data = table.subspan(pos + 1, data_end - pos - 1);
        line += entry_line_delta(kind, data);
        range_end += entry_bytes(header);
        if (offset < range_end) return LocationEntry{kind, data, line};
        pos = data_end;
    }
    return std::nullopt;
}

int location_table_line(Table table, int firstlineno, std::int64_t offset) {
    auto entry = entry_at(table, firstlineno, offset);
    return !entry || entry->kind == kKindNoLocation ? kNoLine : to_line(entry->line);
}

// The columns and end line an entry's data gives (the line itself is entry_line_delta's).
SourceLocation entry_location(int kind, Table data, std::int64_t line) {
    SourceLocation location;
    location.line = to_line(line);
    location.end_line = location.line;
    if (kind < kKindOneLine0) {  // short forms: the column's high bits in the kind
        if (data.empty()) return location;
        location.column = kind * 8 + ((data[0] >> 4) & 7);
        location.end_column = location.column + (data[0] & 15);
    } else if (kind <= kKindOneLine2) {
        if (data.size() < 2) return location;
        location.column = data[0];
        location.end_column = data[1];
    } else if (kind == kKindLong) {
        // Signed line delta, end line delta, then columns plus one (0: none), each a varint.
        std::size_t pos = 0;
        auto next = [&]() -> std::uint32_t {
            std::uint32_t value = read_varint(data.subspan(std::min(pos, data.size())));
            while (pos < data.size() && (data[pos] & 64) != 0) ++pos;
            ++pos;
            return value;
        };
        next();
        location.end_line = to_line(line + next());
        std::uint32_t column = next();
        std::uint32_t end_column = next();
        location.column = column == 0 ? -1 : static_cast<int>(column - 1);
        location.end_column = end_column == 0 ? -1 : static_cast<int>(end_column - 1);
    }
    return location;
}

}  // namespace

SourceLocation location_for_offset(std::span<const std::uint8_t> table, int firstlineno, std::int64_t byte_offset) {
    auto entry = byte_offset < 0 ? std::nullopt : entry_at(table, firstlineno, byte_offset);
    if (!entry || entry->kind == kKindNoLocation) return {};
    return entry_location(entry->kind, entry->data, entry->line);
}

int line_for_offset(LineTableFormat format, std::span<const std::uint8_t> table, int firstlineno,
                    std::int64_t byte_offset, bool signed_lnotab) {
    if (byte_offset < 0) {
        return firstlineno;
    }
    switch (format) {
        case LineTableFormat::Lnotab: return lnotab_line(table, firstlineno, byte_offset, signed_lnotab);
        case LineTableFormat::Linetable310: return linetable310_line(table, firstlineno, byte_offset);
        case LineTableFormat::LocationTable311: return location_table_line(table, firstlineno, byte_offset);
    }
    return kNoLine;
}

}  // namespace pysample::symbolize
