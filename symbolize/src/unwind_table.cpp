// Function starts from a module's .eh_frame_hdr: where symbols are stripped (a distribution's
// extension modules keep only their exported names), the unwind tables still bound every function
// the compiler emitted, so samples in one can be grouped under its start rather than spread over
// one "[unknown]" per instruction.

#include <cstring>
#include <string_view>

#include "symbolize/elf.hpp"

namespace pysample::symbolize {
namespace {

constexpr std::uint8_t kOmit = 0xff;
constexpr std::uint8_t kDatarelSdata4 = 0x3b;

// Reads little-endian values and LEB128 numbers from a span, failing (ok() false) rather than
// reading past it.
class ByteReader {
public:
    explicit ByteReader(std::span<const std::uint8_t> bytes) : bytes_(bytes) {}

    bool ok() const { return ok_; }
    std::size_t position() const { return position_; }

    std::uint64_t fixed(std::size_t size) {
        if (!ok_ || size > 8 || size > bytes_.size() - position_) return fail();
        std::uint64_t value = 0;
        std::memcpy(&value, bytes_.data() + position_, size);
        position_ += size;
        return value;
    }
    std::uint64_t uleb() {
        std::uint64_t value = 0;
        for (unsigned shift = 0; ok_ && position_ < bytes_.size() && shift < 64; shift += 7) {
            std::uint8_t byte = bytes_[position_++];
            value |= static_cast<std::uint64_t>(byte & 0x7f) << shift;
            if ((byte & 0x80) == 0) return value;
        }
        return fail();
    }
    void skip_leb() { uleb(); }
    std::string_view c_string() {
        if (!ok_) return {};
        const auto* start = reinterpret_cast<const char*>(bytes_.data() + position_);
        const void* end = std::memchr(start, 0, bytes_.size() - position_);
        if (end == nullptr) return fail(), std::string_view{};
        std::string_view text(start, static_cast<std::size_t>(static_cast<const char*>(end) - start));
        position_ += text.size() + 1;
        return text;
    }

private:
    std::uint64_t fail() {
        ok_ = false;
        return 0;
    }
    std::span<const std::uint8_t> bytes_;
    std::size_t position_ = 0;
    bool ok_ = true;
};

// Bytes of a DW_EH_PE-encoded value (its low four bits); 0 for one no table here uses.
std::size_t encoded_size(std::uint8_t encoding) {
    switch (encoding & 0x0f) {
        case 0x00:
        case 0x04:
        case 0x0c: return 8;
        case 0x02:
        case 0x0a: return 2;
        case 0x03:
        case 0x0b: return 4;
        default: return 0;
    }
}

// The span of an .eh_frame record (CIE or FDE) at link-time address `address`, after its length.
std::span<const std::uint8_t> record_at(const ElfFile& elf, std::uint64_t address) {
    auto length_bytes = elf.bytes_at_vaddr(address, 4);
    if (length_bytes.size() != 4) return {};
    std::uint32_t length = 0;
    std::memcpy(&length, length_bytes.data(), 4);
    if (length == 0 || length == 0xffffffff) return {};  // a terminator, or the 64-bit form gcc never emits
    return elf.bytes_at_vaddr(address + 4, length);
}

// How the FDEs of the CIE at `address` encode their addresses (the 'R' augmentation).
std::optional<std::uint8_t> fde_encoding(const ElfFile& elf, std::uint64_t address) {
    ByteReader cie(record_at(elf, address));
    if (cie.fixed(4) != 0) return std::nullopt;  // CIE id
    auto version = cie.fixed(1);
    std::string_view augmentation = cie.c_string();
    if (!cie.ok() || augmentation.find("eh") != std::string_view::npos) return std::nullopt;
    cie.skip_leb();  // code alignment
    cie.skip_leb();  // data alignment (signed; skipping needs no sign)
    if (version == 1) {
        cie.fixed(1);
    } else {
        cie.skip_leb();
    }
    if (augmentation.empty() || augmentation[0] != 'z') return cie.ok() ? std::optional<std::uint8_t>(0) : std::nullopt;
    cie.skip_leb();  // augmentation data length
    for (char letter : augmentation.substr(1)) {
        if (letter == 'R') {
            auto encoding = static_cast<std::uint8_t>(cie.fixed(1));
            return cie.ok() ? std::optional<std::uint8_t>(encoding) : std::nullopt;
        }
        if (letter == 'P') {
            auto encoding = static_cast<std::uint8_t>(cie.fixed(1));
            std::size_t size = encoded_size(encoding);
            if (size == 0) return std::nullopt;
            cie.fixed(size);
        } else if (letter == 'L') {
            cie.fixed(1);
        } else if (letter != 'S' && letter != 'B') {
            return std::nullopt;
        }
    }
    return cie.ok() ? std::optional<std::uint8_t>(0) : std::nullopt;
}

// The length of the code the FDE at `address` covers.
std::optional<std::uint64_t> fde_range(const ElfFile& elf, std::uint64_t address) {
    ByteReader fde(record_at(elf, address));
    std::uint64_t pointer_field = address + 4;
    auto cie_pointer = static_cast<std::uint32_t>(fde.fixed(4));
    if (!fde.ok() || cie_pointer == 0 || cie_pointer > pointer_field) return std::nullopt;
    auto encoding = fde_encoding(elf, pointer_field - cie_pointer);
    if (!encoding) return std::nullopt;
    std::size_t size = encoded_size(*encoding);
    if (size == 0) return std::nullopt;
    fde.fixed(size);  // the start, which the table already gives
    std::uint64_t range = fde.fixed(size);
    return fde.ok() ? std::optional<std::uint64_t>(range) : std::nullopt;
}

}  // namespace

std::optional<std::uint64_t> unwind_function_start(const ElfFile& elf, std::uint64_t link_address) {
    const auto* section = elf.section(".eh_frame_hdr");
    if (section == nullptr) return std::nullopt;
    auto bytes = elf.section_data(*section);
    if (bytes.size() < 4 || bytes[0] != 1 || bytes[2] == kOmit || bytes[3] != kDatarelSdata4) return std::nullopt;
    std::size_t pointer_size = bytes[1] == kOmit ? 0 : encoded_size(bytes[1]);
    std::size_t count_size = encoded_size(bytes[2]);
    if ((bytes[1] != kOmit && pointer_size == 0) || count_size == 0) return std::nullopt;
    ByteReader header(bytes);
    header.fixed(4);
    header.fixed(pointer_size);
    std::uint64_t entries = header.fixed(count_size);
    std::size_t table = header.position();
    if (!header.ok() || entries == 0 || entries > (bytes.size() - table) / 8) return std::nullopt;

    auto entry = [&](std::uint64_t index, std::size_t field) {
        std::int32_t value = 0;
        std::memcpy(&value, bytes.data() + table + index * 8 + field, 4);
        return section->addr + static_cast<std::uint64_t>(static_cast<std::int64_t>(value));
    };
    // The last entry starting at or before the address.
    std::uint64_t low = 0;
    std::uint64_t high = entries;
    while (high - low > 1) {
        std::uint64_t middle = low + (high - low) / 2;
        (entry(middle, 0) <= link_address ? low : high) = middle;
    }
    std::uint64_t start = entry(low, 0);
    if (start > link_address) return std::nullopt;
    auto range = fde_range(elf, entry(low, 4));
    if (!range || link_address - start >= *range) return std::nullopt;
    return start;
}

}  // namespace pysample::symbolize
