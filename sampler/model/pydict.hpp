// Reads plain Python objects of a target from outside: dicts, ints, strs, modules and the
// attributes of instances. Every read is checked and bounded; a failure is an empty result.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "attach/memory.hpp"
#include "model/layout.hpp"
#include "model/python_version.hpp"
#include "symbolize/pycode.hpp"

namespace pysample::sampler {

struct DictItem {
    std::uint64_t key = 0;
    std::uint64_t value = 0;
};

// Dicts with more entries than this are not read (2.7: four times as many slots).
inline constexpr std::size_t kMaxDictItems = 1 << 14;

// An int's sign and digits (PyLong: 2.7's long, int from 3.0), least significant first.
struct IntDigits {
    bool negative = false;
    std::uint64_t count = 0;            // how many digits the int has
    std::vector<std::uint32_t> digits;  // all of them; only the most significant one when too many were asked
    int shift = 30;                     // bits per digit (PyLong_SHIFT)
};

// Reads objects of one process. `strings` gives the str layout (read_unicode, read_byte_string).
class ObjectReader {
public:
    ObjectReader(attach::Memory& memory, const PythonLayout& layout, const symbolize::CodeObjectLayout& strings,
                 pid_t pid);

    const PythonLayout& layout() const { return layout_; }
    const VersionFacts& facts() const { return facts_; }
    attach::Memory& memory() { return memory_; }

    // The tp_name of the object's type ("dict", "str"), nullopt when unreadable.
    std::optional<std::string> type_name(std::uint64_t object);
    bool has_type(std::uint64_t object, std::string_view name);

    // The live items of a dict (key and value both set); false when it cannot be read whole.
    bool dict_items(std::uint64_t dict, std::vector<DictItem>& out);
    // The value under a str key; nullopt when absent or unreadable.
    std::optional<std::uint64_t> dict_get(std::uint64_t dict, std::string_view key);
    // The value under a str key among items already read.
    std::optional<std::uint64_t> find_str_key(const std::vector<DictItem>& items, std::string_view key);

    // The instance attributes of an object (its __dict__, wherever the version keeps it).
    bool attribute_items(std::uint64_t object, std::vector<DictItem>& out);
    std::optional<std::uint64_t> attribute(std::uint64_t object, std::string_view name);

    // A non-negative int of up to 64 bits, as its bits.
    std::optional<std::uint64_t> int_value(std::uint64_t object);
    // The digits of a PyLong, whatever its type says: all of them when it has at most
    // `max_digits`, else the most significant one; nullopt when unreadable.
    std::optional<IntDigits> int_digits(std::uint64_t object, std::size_t max_digits);
    // A str object as UTF-8 (2.7: its bytes), at most `max_chars` characters.
    std::optional<std::string> str_value(std::uint64_t object, std::size_t max_chars);

private:
    struct TypeInfo {
        std::int64_t basicsize = 0;
        std::uint64_t flags = 0;
        std::int64_t dictoffset = 0;
        std::uint64_t cached_keys = 0;
    };
    bool read_type(std::uint64_t object, TypeInfo& type);
    bool open_table_items(std::uint64_t dict, std::vector<DictItem>& out);
    bool compact_items(std::uint64_t dict, std::vector<DictItem>& out);
    bool keys_items(std::uint64_t keys, std::uint64_t values, std::vector<DictItem>& out);
    bool keys_items_36(std::uint64_t keys, std::uint64_t values, std::vector<DictItem>& out);
    bool keys_items_311(std::uint64_t keys, std::uint64_t values, std::vector<DictItem>& out);
    bool split_values(std::uint64_t values, std::size_t count, std::vector<DictItem>& out);
    bool managed_attribute_items(std::uint64_t object, const TypeInfo& type, std::vector<DictItem>& out);
    bool str_equals(std::uint64_t object, std::string_view text);

    bool has_flag(std::uint64_t flags, std::int64_t flag) const {
        return flag > 0 && (flags & static_cast<std::uint64_t>(flag)) != 0;
    }

    attach::Memory& memory_;
    PythonLayout layout_;
    VersionFacts facts_;
    symbolize::CodeObjectLayout strings_;
    pid_t pid_;
    std::map<std::uint64_t, std::string> static_type_names_;
    std::map<std::string, std::uint64_t, std::less<>> key_objects_;  // str key -> last key object seen for it
    std::vector<std::uint8_t> buffer_;
    std::vector<DictItem> scratch_;
};

// Makes text from the target safe to print: well-formed UTF-8 (invalid bytes become U+FFFD) and
// control characters replaced by spaces.
std::string printable_name(std::string_view text);

}  // namespace pysample::sampler
