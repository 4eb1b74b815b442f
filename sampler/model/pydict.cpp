#include "model/pydict.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <array>
#include <cstring>

#include "symbolize/pycode.hpp"

namespace pysample::sampler {
namespace {

// Offsets inside structs that the installed headers do not declare, or that only one format has.
constexpr std::size_t kEntrySize = 24;  // PyDictKeyEntry: me_hash, me_key, me_value

// PyDictKeysObject of 3.6-3.10 (Objects/dict-common.h, not installed; checked against live
// dicts): dk_refcnt, dk_size, dk_lookup, dk_usable, dk_nentries, dk_indices.
constexpr std::size_t kKeys36Size = 8;
constexpr std::size_t kKeys36Nentries = 32;
constexpr std::size_t kKeys36Indices = 40;
// PyDictKeysObject of 3.11+ (internal/pycore_dict.h): dk_refcnt, dk_log2_size,
// dk_log2_index_bytes, dk_kind, [dk_mutex when free-threaded], dk_version, dk_usable,
// dk_nentries, dk_indices. Entries follow the 1 << dk_log2_index_bytes bytes of indices.
constexpr std::size_t kKeysLog2Size = 8;
constexpr std::size_t kKeysLog2IndexBytes = 9;
constexpr std::size_t kKeysKind = 10;
constexpr std::size_t kKeysNentries = 24;
constexpr std::size_t kKeysIndices = 32;
constexpr std::uint8_t kKindGeneral = 0;  // DICT_KEYS_GENERAL; UNICODE and SPLIT hold (key, value)
constexpr std::size_t kUnicodeEntrySize = 16;
constexpr std::uint8_t kMaxLog2Size = 30;

// Managed dicts (internal/pycore_object.h): MANAGED_DICT_OFFSET is -3 words from 3.11; 3.11
// keeps the values pointer one word before it. 3.13's PyDictValues starts with capacity, size,
// embedded and valid bytes.
constexpr std::uint64_t kManagedDict = 24;
constexpr std::uint64_t kManagedValues311 = 32;
constexpr std::uint64_t kValuesCapacity = 0;
constexpr std::uint64_t kValuesValid = 3;

// lv_tag's sign bits (3.12+, below _PyLong_NON_SIZE_BITS): 0 positive, 1 zero, 2 negative.
constexpr std::uint64_t kLvTagSignMask = 3;
constexpr std::uint64_t kLvTagNegative = 2;
constexpr std::uint64_t kLvTagZero = 1;
constexpr std::uint64_t kMaxIntDigits = std::uint64_t{1} << 40;  // beyond any real int's size

constexpr std::size_t kMaxTypeName = 64;
constexpr std::size_t kMaxStaticTypes = 256;
constexpr std::size_t kPageSize = 4096;

bool plausible_object(std::uint64_t address) { return address >= kPageSize && address % 8 == 0; }

std::size_t index_bytes_36(std::uint64_t size) {
    if (size <= 0xff) return 1;
    if (size <= 0xffff) return 2;
    if (size <= 0xffffffff) return 4;
    return 8;
}

// The well-formed UTF-8 sequence at `at`: its length, 0 when there is none.
std::size_t decode_code_point(std::string_view text, std::size_t at, char32_t& cp) {
    auto byte = [&](std::size_t i) { return static_cast<unsigned char>(text[i]); };
    unsigned char lead = byte(at);
    std::size_t length = lead < 0x80                   ? 1
                         : lead >= 0xC2 && lead < 0xE0 ? 2
                         : lead >= 0xE0 && lead < 0xF0 ? 3
                         : lead >= 0xF0 && lead < 0xF5 ? 4
                                                       : 0;
    if (length == 0 || at + length > text.size()) return 0;
    cp = length == 1 ? lead : lead & (0x7F >> length);
    for (std::size_t i = 1; i < length; ++i) {
        if ((byte(at + i) & 0xC0) != 0x80) return 0;
        cp = (cp << 6) | (byte(at + i) & 0x3F);
    }
    static constexpr char32_t kMinimum[] = {0, 0, 0x80, 0x800, 0x10000};
    if (cp < kMinimum[length] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return 0;
    return length;
}

// Deleted entries and split-table keys this object has no value for.
void drop_empty(std::vector<DictItem>& items) {
    std::erase_if(items,
                  [](const DictItem& item) { return !plausible_object(item.key) || !plausible_object(item.value); });
}

bool is_control(char32_t cp) { return cp < 0x20 || (cp >= 0x7F && cp < 0xA0); }

}  // namespace

std::string printable_name(std::string_view text) {
    std::string out;
    out.reserve(text.size());
    for (std::size_t at = 0; at < text.size();) {
        char32_t cp = 0;
        std::size_t length = decode_code_point(text, at, cp);
        if (length == 0) {
            symbolize::append_utf8(out, 0xFFFD);
            ++at;
            continue;
        }
        symbolize::append_utf8(out, is_control(cp) ? U' ' : static_cast<std::uint32_t>(cp));
        at += length;
    }
    return out;
}

ObjectReader::ObjectReader(attach::Memory& memory, const PythonLayout& layout,
                           const symbolize::CodeObjectLayout& strings, pid_t pid)
    : memory_(memory),
      layout_(layout),
      facts_(version_facts(layout.major, layout.minor)),
      strings_(strings),
      pid_(pid) {}

namespace {

std::uint64_t at(std::uint64_t address, std::int64_t offset) { return address + static_cast<std::uint64_t>(offset); }

}  // namespace

std::optional<std::string> ObjectReader::type_name(std::uint64_t object) {
    std::uint64_t type = 0;
    if (!plausible_object(object) || !memory_.read_value(at(object, layout_.object_type), type)) return std::nullopt;
    return type_object_name(type);
}

// Names of static types are cached: they live as long as the interpreter. A heap type's
// address may be reused by another type, so its name is read each time.
std::optional<std::string> ObjectReader::type_object_name(std::uint64_t type) {
    if (!plausible_object(type)) return std::nullopt;
    if (auto cached = static_type_names_.find(type); cached != static_type_names_.end()) return cached->second;
    if (auto cached = heap_type_names_.find(type); cached != heap_type_names_.end()) return cached->second;
    std::uint64_t name_address = 0;
    std::uint64_t flags = 0;
    if (!memory_.read_value(at(type, layout_.type_name), name_address) ||
        !memory_.read_value(at(type, layout_.type_flags), flags) || name_address == 0) {
        return std::nullopt;
    }
    auto name = c_string(name_address, kMaxTypeName);
    if (!name) return std::nullopt;
    if (!has_flag(flags, layout_.tpflags_heaptype)) {
        if (static_type_names_.size() >= kMaxStaticTypes) static_type_names_.clear();
        static_type_names_.emplace(type, *name);
    } else if (keep_heap_types_ && heap_type_names_.size() < kMaxStaticTypes) {
        heap_type_names_.emplace(type, *name);
    }
    return name;
}

// A NUL-terminated string of at most `max` bytes, read a page at a time so that a string near the
// end of a mapping does not fail.
std::optional<std::string> ObjectReader::c_string(std::uint64_t address, std::size_t max) {
    std::string out;
    std::array<char, kPageSize> chunk{};
    while (address != 0 && out.size() < max) {
        std::size_t length = std::min<std::size_t>(max - out.size(), kPageSize - address % kPageSize);
        if (!memory_.read(address, chunk.data(), length)) return std::nullopt;
        const char* end = static_cast<const char*>(std::memchr(chunk.data(), '\0', length));
        out.append(chunk.data(), end != nullptr ? static_cast<std::size_t>(end - chunk.data()) : length);
        if (end != nullptr) return out;
        address += length;
    }
    return out;
}

std::optional<double> ObjectReader::float_value(std::uint64_t object) {
    double value = 0;
    if (!plausible_object(object) || layout_.float_value < 0 ||
        !memory_.read_value(at(object, layout_.float_value), value)) {
        return std::nullopt;
    }
    return value;
}

std::optional<BytesPrefix> ObjectReader::bytes_value(std::uint64_t object, std::size_t max_bytes) {
    std::int64_t size = 0;
    if (!plausible_object(object) || layout_.bytes_size < 0 ||
        !memory_.read_value(at(object, layout_.bytes_size), size) || size < 0 ||
        static_cast<std::uint64_t>(size) > kMaxObjectLength) {
        return std::nullopt;
    }
    BytesPrefix out;
    out.size = static_cast<std::uint64_t>(size);
    out.data.resize(std::min(static_cast<std::size_t>(size), max_bytes));
    if (!out.data.empty() && !memory_.read(at(object, layout_.bytes_data), out.data.data(), out.data.size())) {
        return std::nullopt;
    }
    return out;
}

std::optional<std::uint64_t> ObjectReader::module_dict(std::uint64_t module) {
    constexpr std::int64_t kModuleDict = 16;  // PyModuleObject.md_dict, after PyObject_HEAD in every version
    if (!has_type(module, "module")) return std::nullopt;
    auto dict = pointer_field(module, kModuleDict);
    if (!dict || !has_type(*dict, "dict")) return std::nullopt;
    return dict;
}

std::optional<std::uint64_t> ObjectReader::imported_module(std::uint64_t interp, std::string_view name) {
    auto modules = pointer_field(interp, layout_.interp_modules);
    if (!modules || !has_type(*modules, "dict")) return std::nullopt;
    auto module = dict_get(*modules, name);
    if (!module || !has_type(*module, "module")) return std::nullopt;
    return module;
}

std::optional<std::uint64_t> ObjectReader::module_global(std::uint64_t module, std::string_view name) {
    auto dict = module_dict(module);
    return dict ? dict_get(*dict, name) : std::nullopt;
}

std::optional<std::uint64_t> ObjectReader::pointer_field(std::uint64_t object, std::int64_t offset) {
    std::uint64_t value = 0;
    if (offset < 0 || !plausible_object(object) || !memory_.read_value(at(object, offset), value)) return std::nullopt;
    return value;
}

std::optional<std::uint64_t> ObjectReader::type_of(std::uint64_t object) {
    return pointer_field(object, layout_.object_type);
}

bool ObjectReader::is_instance(std::uint64_t object, std::uint64_t type) {
    constexpr int kMaxBases = 32;
    auto current = type_of(object);
    for (int depth = 0; current && *current != 0 && depth < kMaxBases; ++depth) {
        if (*current == type) return true;
        current = pointer_field(*current, layout_.type_base);
    }
    return false;
}

bool ObjectReader::sequence_items(std::uint64_t object, std::vector<std::uint64_t>& out, std::size_t max) {
    out.clear();
    auto type = type_name(object);
    if (!type || (*type != "list" && *type != "tuple")) return false;
    std::int64_t size = 0;
    if (!memory_.read_value(at(object, layout_.var_size), size) || size < 0 || static_cast<std::uint64_t>(size) > max) {
        return false;
    }
    std::uint64_t items = at(object, layout_.tuple_items);
    if (*type == "list") {
        auto pointer = pointer_field(object, layout_.list_items);
        if (!pointer) return false;
        items = *pointer;
    }
    out.resize(static_cast<std::size_t>(size));
    return size == 0 || memory_.read(items, out.data(), out.size() * sizeof(std::uint64_t));
}

// Open addressing: mask + 1 entries of {key, hash}; an empty slot has no key, a removed one the
// dummy key with hash -1, which no real key has.
bool ObjectReader::set_items(std::uint64_t set, std::vector<std::uint64_t>& out, std::size_t max) {
    out.clear();
    std::int64_t mask = 0;
    auto table = pointer_field(set, layout_.set_table);
    if (!table || layout_.set_mask < 0 || !memory_.read_value(at(set, layout_.set_mask), mask) || mask < 0 ||
        static_cast<std::uint64_t>(mask) >= 4 * max) {
        return false;
    }
    std::vector<std::uint64_t> entries(2 * (static_cast<std::size_t>(mask) + 1));
    if (!memory_.read(*table, entries.data(), entries.size() * sizeof(std::uint64_t))) return false;
    for (std::size_t i = 0; i < entries.size(); i += 2) {
        if (entries[i] == 0 || static_cast<std::int64_t>(entries[i + 1]) == -1) continue;
        if (out.size() == max) return false;
        out.push_back(entries[i]);
    }
    return true;
}

bool ObjectReader::has_type(std::uint64_t object, std::string_view name) {
    auto actual = type_name(object);
    return actual && *actual == name;
}

bool ObjectReader::dict_items(std::uint64_t dict, std::vector<DictItem>& out) {
    out.clear();
    if (!plausible_object(dict)) return false;
    return facts_.dict_format == DictFormat::Open27 ? open_table_items(dict, out) : compact_items(dict, out);
}

bool ObjectReader::open_table_items(std::uint64_t dict, std::vector<DictItem>& out) {
    std::uint64_t mask = 0;
    std::uint64_t table = 0;
    if (!memory_.read_value(at(dict, layout_.dict_mask), mask) ||
        !memory_.read_value(at(dict, layout_.dict_table), table)) {
        spdlog::debug("pid {}: dict at {:#x} unreadable", pid_, dict);
        return false;
    }
    std::uint64_t slots = mask + 1;
    if ((slots & mask) != 0 || slots > 4 * kMaxDictItems || !plausible_object(table)) {
        spdlog::debug("pid {}: dict at {:#x} has an implausible table ({} slots at {:#x})", pid_, dict, slots, table);
        return false;
    }
    buffer_.resize(slots * kEntrySize);
    if (!memory_.read(table, buffer_.data(), buffer_.size())) {
        spdlog::debug("pid {}: table of dict at {:#x} unreadable at {:#x}", pid_, dict, table);
        return false;
    }
    for (std::size_t slot = 0; slot < slots && out.size() < kMaxDictItems; ++slot) {
        DictItem item{attach::field_at<std::uint64_t>(buffer_, static_cast<std::int64_t>(slot * kEntrySize + 8)),
                      attach::field_at<std::uint64_t>(buffer_, static_cast<std::int64_t>(slot * kEntrySize + 16))};
        // Deleted slots keep a dummy key without a value.
        if (plausible_object(item.key) && plausible_object(item.value)) out.push_back(item);
    }
    return true;
}

bool ObjectReader::compact_items(std::uint64_t dict, std::vector<DictItem>& out) {
    std::uint64_t keys = 0;
    std::uint64_t values = 0;
    if (!memory_.read_value(at(dict, layout_.dict_keys), keys) ||
        !memory_.read_value(at(dict, layout_.dict_values), values)) {
        spdlog::debug("pid {}: dict at {:#x} unreadable", pid_, dict);
        return false;
    }
    return keys_items(keys, values, out);
}

// `values` is a split table's values (ma_values, or an object's own values), 0 for a combined table.
bool ObjectReader::keys_items(std::uint64_t keys, std::uint64_t values, std::vector<DictItem>& out) {
    if (!plausible_object(keys)) {
        spdlog::debug("pid {}: dict keys at {:#x} implausible", pid_, keys);
        return false;
    }
    return facts_.dict_format == DictFormat::Compact36 ? keys_items_36(keys, values, out)
                                                       : keys_items_311(keys, values, out);
}

bool ObjectReader::keys_items_36(std::uint64_t keys, std::uint64_t values, std::vector<DictItem>& out) {
    std::uint64_t size = 0;
    std::int64_t entries = 0;
    if (!memory_.read_value(keys + kKeys36Size, size) || !memory_.read_value(keys + kKeys36Nentries, entries)) {
        spdlog::debug("pid {}: dict keys at {:#x} unreadable", pid_, keys);
        return false;
    }
    if (size < 8 || (size & (size - 1)) != 0 || size > (std::uint64_t{1} << kMaxLog2Size) || entries < 0 ||
        static_cast<std::uint64_t>(entries) > size || static_cast<std::uint64_t>(entries) > kMaxDictItems) {
        spdlog::debug("pid {}: dict keys at {:#x} implausible (size {}, {} entries)", pid_, keys, size, entries);
        return false;
    }
    auto count = static_cast<std::size_t>(entries);
    buffer_.resize(count * kEntrySize);
    std::uint64_t first = keys + kKeys36Indices + size * index_bytes_36(size);
    if (!memory_.read(first, buffer_.data(), buffer_.size())) {
        spdlog::debug("pid {}: entries of dict keys at {:#x} unreadable at {:#x}", pid_, keys, first);
        return false;
    }
    for (std::size_t i = 0; i < count; ++i) {
        out.push_back({attach::field_at<std::uint64_t>(buffer_, static_cast<std::int64_t>(i * kEntrySize + 8)),
                       attach::field_at<std::uint64_t>(buffer_, static_cast<std::int64_t>(i * kEntrySize + 16))});
    }
    if (values != 0 && !split_values(values, count, out)) return false;
    drop_empty(out);
    return true;
}

bool ObjectReader::keys_items_311(std::uint64_t keys, std::uint64_t values, std::vector<DictItem>& out) {
    std::array<std::uint8_t, kKeysIndices> header{};
    if (!memory_.read(keys, header.data(), header.size())) {
        spdlog::debug("pid {}: dict keys at {:#x} unreadable", pid_, keys);
        return false;
    }
    std::uint8_t log2_size = header[kKeysLog2Size];
    std::uint8_t log2_index_bytes = header[kKeysLog2IndexBytes];
    std::uint8_t kind = header[kKeysKind];
    std::int64_t entries = 0;
    std::memcpy(&entries, header.data() + kKeysNentries, sizeof(entries));
    if (log2_size < 3 || log2_size > kMaxLog2Size || log2_index_bytes < log2_size || log2_index_bytes > log2_size + 3 ||
        kind > 2 || entries < 0 || entries > (std::int64_t{1} << log2_size) ||
        static_cast<std::uint64_t>(entries) > kMaxDictItems) {
        spdlog::debug("pid {}: dict keys at {:#x} implausible (log2 size {}, kind {}, {} entries)", pid_, keys,
                      log2_size, kind, entries);
        return false;
    }
    auto count = static_cast<std::size_t>(entries);
    std::size_t entry_size = kind == kKindGeneral ? kEntrySize : kUnicodeEntrySize;
    std::size_t key_at = kind == kKindGeneral ? 8 : 0;
    buffer_.resize(count * entry_size);
    std::uint64_t first = keys + kKeysIndices + (std::uint64_t{1} << log2_index_bytes);
    if (!memory_.read(first, buffer_.data(), buffer_.size())) {
        spdlog::debug("pid {}: entries of dict keys at {:#x} unreadable at {:#x}", pid_, keys, first);
        return false;
    }
    for (std::size_t i = 0; i < count; ++i) {
        auto at = static_cast<std::int64_t>(i * entry_size + key_at);
        out.push_back({attach::field_at<std::uint64_t>(buffer_, at), attach::field_at<std::uint64_t>(buffer_, at + 8)});
    }
    if (values != 0 && !split_values(values, count, out)) return false;
    drop_empty(out);
    return true;
}

// A split table keeps its values apart, in the order of the shared keys' entries. From 3.13 the
// values know their capacity, which may be below the number of keys added since.
bool ObjectReader::split_values(std::uint64_t values, std::size_t count, std::vector<DictItem>& out) {
    std::uint64_t array = values;
    if (layout_.dict_values_array > 0) {
        std::uint8_t capacity = 0;
        if (!memory_.read_value(values + kValuesCapacity, capacity)) {
            spdlog::debug("pid {}: dict values unreadable at {:#x}", pid_, values);
            return false;
        }
        count = std::min<std::size_t>(count, capacity);
        array += static_cast<std::uint64_t>(layout_.dict_values_array);
    }
    std::vector<std::uint64_t> pointers(count);
    if (!memory_.read(array, pointers.data(), pointers.size() * sizeof(std::uint64_t))) {
        spdlog::debug("pid {}: dict values unreadable at {:#x}", pid_, array);
        return false;
    }
    for (std::size_t i = 0; i < out.size(); ++i) out[i].value = i < count ? pointers[i] : 0;
    return true;
}

std::optional<std::uint64_t> ObjectReader::dict_get(std::uint64_t dict, std::string_view key) {
    if (!dict_items(dict, scratch_)) return std::nullopt;
    return find_str_key(scratch_, key);
}

// The key object that matched last time is tried first: dicts keep their key objects, so a
// repeated lookup reads one string instead of all of them.
std::optional<std::uint64_t> ObjectReader::find_str_key(const std::vector<DictItem>& items, std::string_view key) {
    auto remembered = key_objects_.find(key);
    if (remembered != key_objects_.end()) {
        for (const auto& item : items) {
            if (item.key == remembered->second && str_equals(item.key, key)) return item.value;
        }
    }
    for (const auto& item : items) {
        if (str_equals(item.key, key)) {
            key_objects_[std::string(key)] = item.key;
            return item.value;
        }
    }
    return std::nullopt;
}

bool ObjectReader::str_equals(std::uint64_t object, std::string_view text) {
    auto value = str_value(object, text.size() + 1);
    return value && *value == text;
}

std::optional<std::string> ObjectReader::str_value(std::uint64_t object, std::size_t max_chars) {
    if (!has_type(object, "str")) return std::nullopt;
    if (facts_.code_strings == symbolize::StringKind::Bytes)
        return symbolize::read_byte_string(memory_, strings_, object, max_chars);
    return symbolize::read_unicode(memory_, strings_, object, max_chars);
}

bool ObjectReader::read_type(std::uint64_t object, TypeInfo& type) {
    std::uint64_t address = 0;
    if (!memory_.read_value(at(object, layout_.object_type), address) || !plausible_object(address) ||
        !memory_.read_value(at(address, layout_.type_basicsize), type.basicsize) ||
        !memory_.read_value(at(address, layout_.type_flags), type.flags) ||
        !memory_.read_value(at(address, layout_.type_dictoffset), type.dictoffset)) {
        spdlog::debug("pid {}: type of the object at {:#x} unreadable", pid_, object);
        return false;
    }
    if (has_flag(type.flags, layout_.tpflags_heaptype) && layout_.heap_cached_keys >= 0 &&
        !memory_.read_value(at(address, layout_.heap_cached_keys), type.cached_keys)) {
        spdlog::debug("pid {}: cached keys of the type at {:#x} unreadable", pid_, address);
        return false;
    }
    return true;
}

bool ObjectReader::attribute_items(std::uint64_t object, std::vector<DictItem>& out) {
    out.clear();
    TypeInfo type;
    if (!plausible_object(object) || !read_type(object, type)) return false;
    if (facts_.instance_format != InstanceDictFormat::DictOffset &&
        has_flag(type.flags, layout_.tpflags_managed_dict)) {
        return managed_attribute_items(object, type, out);
    }
    if (type.dictoffset <= 0) return false;  // no __dict__, or one at the end of a variable-size object
    std::uint64_t dict = 0;
    if (!memory_.read_value(object + static_cast<std::uint64_t>(type.dictoffset), dict)) return false;
    return dict == 0 || dict_items(dict, out);
}

// An instance of a class keeps its attributes either in a dict of its own or, as long as no dict
// was asked for, in a values array that shares the class's keys (ht_cached_keys).
bool ObjectReader::managed_attribute_items(std::uint64_t object, const TypeInfo& type, std::vector<DictItem>& out) {
    std::uint64_t word = 0;
    if (!memory_.read_value(object - kManagedDict, word)) return false;
    std::uint64_t values = 0;
    switch (facts_.instance_format) {
        case InstanceDictFormat::Managed311:
            if (word != 0) return dict_items(word, out);
            if (!memory_.read_value(object - kManagedValues311, values)) return false;
            break;
        case InstanceDictFormat::DictOrValues312:
            if ((word & 1) == 0) return word == 0 || dict_items(word, out);
            values = word + 1;  // the word is the values pointer minus one
            break;
        case InstanceDictFormat::InlineValues313: {
            if (word != 0) return dict_items(word, out);
            if (!has_flag(type.flags, layout_.tpflags_inline_values) || type.basicsize <= 0) return true;
            values = object + static_cast<std::uint64_t>(type.basicsize);
            std::uint8_t valid = 0;
            if (!memory_.read_value(values + kValuesValid, valid) || valid == 0) return false;
            break;
        }
        case InstanceDictFormat::DictOffset: return false;
    }
    if (values == 0) return true;
    return keys_items(type.cached_keys, values, out);
}

std::optional<std::uint64_t> ObjectReader::attribute(std::uint64_t object, std::string_view name) {
    if (!attribute_items(object, scratch_)) return std::nullopt;
    return find_str_key(scratch_, name);
}

std::optional<std::uint64_t> ObjectReader::int_value(std::uint64_t object) {
    auto type = type_name(object);
    if (!type) return std::nullopt;
    if (facts_.int_format == IntFormat::Int27 && *type == "int") {
        std::int64_t value = 0;
        if (!memory_.read_value(at(object, layout_.int_value), value) || value < 0) return std::nullopt;
        return static_cast<std::uint64_t>(value);
    }
    if (*type != (facts_.int_format == IntFormat::Int27 ? "long" : "int")) return std::nullopt;
    const auto bits = static_cast<unsigned>(layout_.long_shift);
    if (bits == 0) return std::nullopt;
    auto digits = int_digits(object, (64 + bits - 1) / bits);
    if (!digits || digits->negative || digits->digits.size() != digits->count) return std::nullopt;
    std::uint64_t value = 0;
    for (std::size_t i = digits->digits.size(); i-- > 0;) {
        std::uint32_t digit = digits->digits[i];
        if (digit >> bits != 0) return std::nullopt;
        if (value > (~std::uint64_t{0} >> bits)) return std::nullopt;  // more than 64 bits
        value = (value << bits) | digit;
    }
    return value;
}

// Up to 3.11 (and 2.7's long) ob_size is the digit count, negative for negative numbers; from
// 3.12 lv_tag holds the count above its sign bits. Digits are 15 bits in 2 bytes or 30 bits in 4,
// as the build chose.
std::optional<IntDigits> ObjectReader::int_digits(std::uint64_t object, std::size_t max_digits) {
    IntDigits out;
    out.shift = static_cast<int>(layout_.long_shift);
    const auto digit_size = static_cast<std::size_t>(layout_.long_digit_size);
    if (out.shift <= 0 || out.shift >= 32 || (digit_size != 2 && digit_size != 4)) return std::nullopt;
    std::uint64_t size = 0;
    if (!memory_.read_value(at(object, layout_.long_size), size)) return std::nullopt;
    if (facts_.int_format == IntFormat::LvTag) {
        if ((size & kLvTagSignMask) == kLvTagZero) return out;
        out.negative = (size & kLvTagSignMask) == kLvTagNegative;
        out.count = size >> layout_.long_non_size_bits;
    } else {
        auto signed_size = static_cast<std::int64_t>(size);
        out.negative = signed_size < 0;
        out.count = out.negative ? 0 - size : size;
    }
    if (out.count > kMaxIntDigits) return std::nullopt;
    // All the digits, or only the most significant one.
    std::uint64_t read = out.count <= max_digits ? out.count : 1;
    std::uint64_t first = out.count <= max_digits ? 0 : out.count - 1;
    std::vector<std::uint8_t> raw(static_cast<std::size_t>(read) * digit_size);
    if (read != 0 && !memory_.read(at(object, layout_.long_digits) + first * digit_size, raw.data(), raw.size())) {
        return std::nullopt;
    }
    out.digits.resize(static_cast<std::size_t>(read));
    for (std::size_t i = 0; i < out.digits.size(); ++i) {
        if (digit_size == 4) {
            std::memcpy(&out.digits[i], raw.data() + i * 4, 4);
        } else {
            std::uint16_t narrow = 0;
            std::memcpy(&narrow, raw.data() + i * 2, 2);
            out.digits[i] = narrow;
        }
    }
    return out;
}

}  // namespace pysample::sampler
