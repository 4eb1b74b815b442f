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

// The first bytes of a bytes object (2.7: str) and its whole size.
struct BytesPrefix {
    std::uint64_t size = 0;
    std::vector<std::uint8_t> data;
};

// Sizes beyond this are taken for garbage, not read.
inline constexpr std::uint64_t kMaxObjectLength = std::uint64_t{1} << 48;

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
    // The tp_name of a type object, as the target holds it (not escaped).
    std::optional<std::string> type_object_name(std::uint64_t type);
    // Heap types' names are read each time (a freed type's address may be reused) unless kept
    // between calls of this, for a reader that reads many objects of the same few heap types at
    // one moment.
    void forget_heap_types() {
        heap_type_names_.clear();
        keep_heap_types_ = true;
    }
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
    std::optional<double> float_value(std::uint64_t object);
    // A bytes object's size and at most `max_bytes` of its first bytes.
    std::optional<BytesPrefix> bytes_value(std::uint64_t object, std::size_t max_bytes);
    // A NUL-terminated C string of at most `max` bytes.
    std::optional<std::string> c_string(std::uint64_t address, std::size_t max);

    // A module object's __dict__.
    std::optional<std::uint64_t> module_dict(std::uint64_t module);
    // sys.modules[name] of an interpreter; nullopt when not imported or unreadable.
    std::optional<std::uint64_t> imported_module(std::uint64_t interp, std::string_view name);
    // A global of a module object.
    std::optional<std::uint64_t> module_global(std::uint64_t module, std::string_view name);

    // The pointer-sized field at `offset` of an object; nullopt when the offset is absent (-1) or
    // the read fails.
    std::optional<std::uint64_t> pointer_field(std::uint64_t object, std::int64_t offset);
    // The object's type (ob_type).
    std::optional<std::uint64_t> type_of(std::uint64_t object);
    // Whether the object's type is `type` or derives from it (through tp_base).
    bool is_instance(std::uint64_t object, std::uint64_t type);
    // The items of a list or tuple, at most `max`; false when unreadable or longer.
    bool sequence_items(std::uint64_t object, std::vector<std::uint64_t>& out, std::size_t max);
    // The members of a set or frozenset, at most `max`; false when unreadable or larger.
    bool set_items(std::uint64_t set, std::vector<std::uint64_t>& out, std::size_t max);

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
    std::map<std::uint64_t, std::string> heap_type_names_;
    bool keep_heap_types_ = false;
    std::map<std::string, std::uint64_t, std::less<>> key_objects_;  // str key -> last key object seen for it
    std::vector<std::uint8_t> buffer_;
    std::vector<DictItem> scratch_;
};

// Makes text from the target safe to print: well-formed UTF-8 (invalid bytes become U+FFFD) and
// control characters replaced by spaces.
std::string printable_name(std::string_view text);

}  // namespace pysample::sampler
