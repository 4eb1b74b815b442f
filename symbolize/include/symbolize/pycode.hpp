#pragma once

#include <chrono>
#include <cstdint>
#include <limits>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "symbolize/linetable.hpp"

namespace pysample::attach {
class Memory;
}

namespace pysample::symbolize {

// How co_name and co_filename are stored: PEP 393 str objects (3.3+), or Python 2's
// PyStringObject, a byte string laid out like bytes (bytes_size, bytes_data).
enum class StringKind { Unicode, Bytes };

// Where a version keeps the code-object and string fields needed to name a frame. Offsets of -1
// are fields the version does not have.
struct CodeObjectLayout {
    std::int64_t size = 0;
    std::int64_t filename = -1;
    std::int64_t name = -1;
    std::int64_t qualname = -1;
    std::int64_t firstlineno = -1;
    std::int64_t linetable = -1;
    std::int64_t firsttraceable = -1;
    std::int64_t unicode_length = -1;
    std::int64_t unicode_state = -1;
    std::int64_t unicode_ascii_data = -1;
    std::int64_t unicode_compact_data = -1;
    std::int64_t unicode_legacy_data = -1;  // data pointer of a str that is not compact (a str subclass's)
    std::int64_t bytes_size = -1;
    std::int64_t bytes_data = -1;
    LineTableFormat format = LineTableFormat::LocationTable311;
    bool signed_lnotab = true;
    StringKind strings = StringKind::Unicode;
};

struct CodeInfo {
    std::string function;  // co_qualname where the version has it, else co_name
    std::string name;      // co_name: what cProfile names the function (empty when the same as `function`)
    std::string filename;
    int firstlineno = 0;
    int firsttraceable = 0;  // index of the first instruction a traceback would show (3.11+)
    std::vector<std::uint8_t> linetable;
    LineTableFormat format = LineTableFormat::LocationTable311;
    bool signed_lnotab = true;
    mutable std::unordered_map<std::int64_t, int> lines;                          // byte offset -> line
    mutable std::int64_t last_offset = std::numeric_limits<std::int64_t>::min();  // line_at()'s last answer
    mutable int last_line = 0;
    // The object's own pointers to its name, file and line table: a different code object later
    // allocated at the same address has different ones.
    std::uint64_t fingerprint = 0;
    std::uint32_t id = 0;          // unique among all entries ever made: a key that outlives a reused address
    std::uint64_t address = 0;     // the code object's, when it was read
    std::int64_t code_bytes = -1;  // length of the bytecode where the header tells it (3.11+), else -1
    // Bookkeeping of CodeCache: the sample that last used the entry, and when its header was last checked.
    std::uint64_t last_sample = 0;
    std::chrono::steady_clock::time_point checked_at{};

    int line_at(std::int64_t byte_offset) const;
    // Whether an instruction at this byte offset (3.11+: may be -2, before the first) can belong to this code.
    bool holds_offset(std::int64_t byte_offset) const {
        return code_bytes < 0 || (byte_offset >= -2 && byte_offset < code_bytes);
    }
};

// Reads a str object of the target as UTF-8; nullopt when it does not look like a str.
std::optional<std::string> read_unicode(attach::Memory& memory, const CodeObjectLayout& layout, std::uint64_t address,
                                        std::size_t max_chars = 4096);

// The first code points of a str object of the target, and its whole length.
struct UnicodePrefix {
    std::vector<std::uint32_t> code_points;
    std::uint64_t length = 0;
};

// Reads at most `max_chars` code points (`max_chars` times the string's character width in bytes);
// nullopt when the object does not look like a str.
std::optional<UnicodePrefix> read_unicode_prefix(attach::Memory& memory, const CodeObjectLayout& layout,
                                                 std::uint64_t address, std::size_t max_chars);

// Appends a code point as UTF-8; U+FFFD for surrogates and values beyond Unicode.
void append_utf8(std::string& out, std::uint32_t code_point);

// `bytes` as well-formed UTF-8: each byte that is not part of a valid sequence becomes U+FFFD.
std::string utf8_from_bytes(std::string_view bytes);

// Reads a Python 2 str (PyStringObject) of the target, its bytes taken as UTF-8 (source files and
// identifiers of Python 2 are ASCII or UTF-8, and other bytes become U+FFFD); nullopt when its
// size is implausible.
std::optional<std::string> read_byte_string(attach::Memory& memory, const CodeObjectLayout& layout,
                                            std::uint64_t address, std::size_t max_chars = 4096);

// Resolves code-object addresses to names and line tables, caching by address. Code objects are
// immutable, but freed ones (module bodies after import, exec'd code) leave their address to new
// ones, so an entry is trusted only after re-reading the object's header and checking its type and
// fingerprint (its own pointers to name, file and line table). Once samples are counted
// (new_sample()), that check is skipped for an entry the previous sample used and that was checked
// less than kTrustFor ago: a live frame holds its code object, and a code object seen sample after
// sample is the same one; the time bound limits how long an address reused between two samples
// could go unnoticed. What lookup() returns stays valid until the next new_sample().
class CodeCache {
public:
    static constexpr std::chrono::milliseconds kTrustFor{100};

    CodeCache(attach::Memory& memory, CodeObjectLayout layout, std::uint64_t code_type_address,
              std::size_t max_entries = 1 << 16);
    // nullptr when the address is not a readable code object. `recheck` forces the header check.
    const CodeInfo* lookup(std::uint64_t code_address, bool recheck = false);
    void new_sample();
    bool is_code_object(std::uint64_t address);
    const CodeObjectLayout& layout() const { return layout_; }
    std::size_t size() const { return entries_.size(); }

private:
    const CodeInfo* checked_lookup(std::uint64_t code_address);
    std::unique_ptr<CodeInfo> load(std::uint64_t fingerprint);
    std::uint64_t fingerprint_of() const;

    attach::Memory& memory_;
    CodeObjectLayout layout_;
    std::uint64_t code_type_address_;
    std::size_t max_entries_;
    std::unordered_map<std::uint64_t, std::unique_ptr<CodeInfo>> entries_;
    // Entries replaced or dropped since new_sample(): what this sample's frames point to stays valid.
    std::vector<std::unique_ptr<CodeInfo>> retired_;
    std::vector<std::uint8_t> raw_;
    std::uint64_t sample_ = 0;
    std::chrono::steady_clock::time_point now_{};
    CodeInfo* last_ = nullptr;  // the entry lookup() last returned, for last_address_
    std::uint64_t last_address_ = 0;
};

}  // namespace pysample::symbolize
