// The recording's bytes (see exporters/recording.hpp): shared by its writer and its reader.
//
// File:   "PYSAMPLE-REC" u32 version, then blocks.
// Block:  "PBLK" u32 compressed size, u32 size, u32 CRC-32 of the records, the records (zlib).
// Record: a tag byte, then its fields: unsigned varints, zigzag varints for signed numbers,
//         strings as a varint length and bytes, doubles as 8 little-endian bytes.
#pragma once

#include <bit>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <string_view>

namespace pysample::exporters::recording {

inline constexpr std::string_view kMagic = "PYSAMPLE-REC";
inline constexpr std::uint32_t kVersion = 1;
inline constexpr std::string_view kBlockMagic = "PBLK";
inline constexpr std::size_t kHeaderSize = 16;
inline constexpr std::size_t kBlockHeaderSize = 16;
inline constexpr std::uint32_t kMaxBlockSize = 64U << 20;

enum Tag : std::uint8_t {
    kInfo = 1,        // count, then (key, value) strings
    kProcess = 2,     // pid, root label, command line
    kThread = 3,      // pid, tid, name: the next thread id
    kFrame = 4,       // function, file, line, first line, flags (1: made by pysample), plain name
    kStack = 5,       // count, frame ids, root first: the next stack id
    kTick = 6,        // time since the last tick (us), count << 1 | failed, then per sample: thread << 1 |
                      // plain; unless plain (the thread's last stack, weight 1, no flags): stack + 1 (0: the
                      // thread's last stack) and weight << 2 | flags
    kEnd = 7,         // duration (s), rate achieved (Hz), ticks, failed ticks
    kEmptyTicks = 8,  // ticks without a sample: how many, how many failed, time from the last tick to the last
    // A tick of fewer than kSmallTickCount samples: the tag is kSmallTick + (count << 1 | failed), then the
    // time and the samples as in kTick.
    kSmallTick = 16,
};
inline constexpr std::uint64_t kSmallTickCount = (256 - kSmallTick) / 2;

class Encoder {
public:
    explicit Encoder(std::string& out) : out_(out) {}
    void byte(std::uint8_t value) { out_ += static_cast<char>(value); }
    void varint(std::uint64_t value) {
        while (value >= 0x80) {
            out_ += static_cast<char>((value & 0x7F) | 0x80);
            value >>= 7;
        }
        out_ += static_cast<char>(value);
    }
    void signed_varint(std::int64_t value) {
        varint((static_cast<std::uint64_t>(value) << 1) ^ static_cast<std::uint64_t>(value >> 63));
    }
    void string(std::string_view text) {
        varint(text.size());
        out_ += text;
    }
    void real(double value) { fixed(std::bit_cast<std::uint64_t>(value), 8); }
    void fixed(std::uint64_t value, int width) {
        for (int i = 0; i < width; ++i) out_ += static_cast<char>((value >> (8 * i)) & 0xFF);
    }

private:
    std::string& out_;
};

struct Malformed : std::runtime_error {
    using std::runtime_error::runtime_error;
};

class Decoder {
public:
    explicit Decoder(std::string_view in) : in_(in) {}
    bool done() const { return at_ >= in_.size(); }
    std::uint8_t byte() {
        need(1);
        return static_cast<std::uint8_t>(in_[at_++]);
    }
    std::uint64_t varint() {
        std::uint64_t value = 0;
        for (int shift = 0; shift < 64; shift += 7) {
            auto next = byte();
            value |= static_cast<std::uint64_t>(next & 0x7F) << shift;
            if ((next & 0x80) == 0) return value;
        }
        throw Malformed("a number longer than 64 bits");
    }
    std::int64_t signed_varint() {
        auto raw = varint();
        return static_cast<std::int64_t>((raw >> 1) ^ (~(raw & 1) + 1));
    }
    std::string string() {
        auto size = varint();
        need(size);
        std::string text(in_.substr(at_, size));
        at_ += size;
        return text;
    }
    double real() { return std::bit_cast<double>(fixed(8)); }
    std::uint64_t fixed(int width) {
        need(static_cast<std::uint64_t>(width));
        std::uint64_t value = 0;
        for (int i = 0; i < width; ++i)
            value |= static_cast<std::uint64_t>(static_cast<std::uint8_t>(in_[at_ + i])) << (8 * i);
        at_ += static_cast<std::size_t>(width);
        return value;
    }

private:
    void need(std::uint64_t bytes) const {
        if (bytes > in_.size() - at_) throw Malformed("a record runs past the end of its block");
    }
    std::string_view in_;
    std::size_t at_ = 0;
};

}  // namespace pysample::exporters::recording
