// The stats dict cProfile dumps, written in Python's marshal format (the subset of marshal
// version 2 that every Python 3 reads): pstats.Stats(path), snakeviz and gprof2dot load it.
//
// Keys are cProfile's own, (co_filename, co_firstlineno, co_name), so that a pysample file can be
// compared with, or added to, one from cProfile. For a sampling profile the columns mean:
//   tt  samples with the function innermost, times the sampling interval
//   ct  samples with the function anywhere on the stack (once per sample, even when recursive),
//       times the interval
//   nc, cc  0: a sampler sees no calls, and pstats then leaves "percall" blank
// and each caller edge (caller -> function) carries the same four numbers for the samples that
// contain that edge.

#include <bit>
#include <cstdint>
#include <limits>
#include <string>

#include "exporters/exporters.hpp"
#include "function_stats.hpp"

namespace pysample::exporters {
namespace {

using detail::FunctionKey;
using detail::FunctionStats;
using detail::FunctionTable;
using detail::SampleCounts;

// Type codes from CPython's Python/marshal.c.
constexpr char kNull = '0';
constexpr char kDict = '{';
constexpr char kTuple = '(';
constexpr char kInt = 'i';
constexpr char kLong = 'l';
constexpr char kBinaryFloat = 'g';
constexpr char kUnicode = 'u';

class MarshalWriter {
public:
    void begin_dict() { bytes_ += kDict; }
    void end_dict() { bytes_ += kNull; }

    void begin_tuple(std::uint32_t size) {
        bytes_ += kTuple;
        put_le(size, 4);
    }

    void integer(std::int64_t value) {
        if (value >= std::numeric_limits<std::int32_t>::min() && value <= std::numeric_limits<std::int32_t>::max()) {
            bytes_ += kInt;
            put_le(static_cast<std::uint32_t>(static_cast<std::int32_t>(value)), 4);
        } else {
            long_integer(value);
        }
    }

    void real(double value) {
        bytes_ += kBinaryFloat;
        put_le(std::bit_cast<std::uint64_t>(value), 8);
    }

    // `text` must already be valid UTF-8: marshal.load rejects anything else.
    void string(const std::string& text) {
        bytes_ += kUnicode;
        put_le(static_cast<std::uint32_t>(text.size()), 4);
        bytes_ += text;
    }

    const std::string& bytes() const { return bytes_; }

private:
    void put_le(std::uint64_t value, int width) {
        for (int i = 0; i < width; ++i) bytes_ += static_cast<char>((value >> (8 * i)) & 0xFF);
    }

    // Python's long form: a signed count of 15-bit digits, least significant first.
    void long_integer(std::int64_t value) {
        std::uint64_t magnitude = value < 0 ? 0 - static_cast<std::uint64_t>(value) : static_cast<std::uint64_t>(value);
        std::string digits;
        std::int32_t count = 0;
        for (; magnitude != 0; magnitude >>= 15, ++count) {
            digits += static_cast<char>(magnitude & 0xFF);
            digits += static_cast<char>((magnitude >> 8) & 0x7F);
        }
        bytes_ += kLong;
        put_le(static_cast<std::uint32_t>(value < 0 ? -count : count), 4);
        bytes_ += digits;
    }

    std::string bytes_;
};

void write_key(MarshalWriter& writer, const FunctionKey& key) {
    writer.begin_tuple(3);
    writer.string(key.filename);
    writer.integer(key.line);
    writer.string(key.function);
}

// (cc, nc, tt, ct): the first four fields of a function's entry and a caller's whole entry.
void write_timings(MarshalWriter& writer, const SampleCounts& counts, double interval) {
    writer.integer(0);
    writer.integer(0);
    writer.real(static_cast<double>(counts.own) * interval);
    writer.real(static_cast<double>(counts.total) * interval);
}

void write_entry(MarshalWriter& writer, const FunctionTable& table, const FunctionStats& function, double interval) {
    writer.begin_tuple(5);
    write_timings(writer, function.counts, interval);
    writer.begin_dict();
    for (const auto& [caller, counts] : function.callers) {
        write_key(writer, table.functions[caller].key);
        writer.begin_tuple(4);
        write_timings(writer, counts, interval);
    }
    writer.end_dict();
}

}  // namespace

// Threads are merged, as cProfile does; the key's line is where the function starts, so
// `line_numbers` does not change this format.
void write_pstats(const Profile& profile, const WriteOptions&, std::ostream& out) {
    const FunctionTable table = detail::aggregate_functions(profile);
    const double interval = profile.info.interval_s();
    MarshalWriter writer;
    writer.begin_dict();
    for (const FunctionStats& function : table.functions) {
        write_key(writer, function.key);
        write_entry(writer, table, function, interval);
    }
    writer.end_dict();
    out.write(writer.bytes().data(), static_cast<std::streamsize>(writer.bytes().size()));
}

}  // namespace pysample::exporters
