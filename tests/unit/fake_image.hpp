// A fake target memory for the model's unit tests: objects laid out as a given CPython layout
// has them, in separate regions so that a read past an object fails.
#pragma once

#include <doctest/doctest.h>

#include <cstring>
#include <map>
#include <string>
#include <vector>

#include "attach/memory.hpp"
#include "model/layout.hpp"
#include "model/pydict.hpp"
#include "symbolize/pycode.hpp"

namespace pysample::testing {

using sampler::DictItem;

// A target's memory made of separate regions: a read that leaves its region fails, as one past
// the end of a mapping would.
class FakeImage final : public attach::Memory {
public:
    explicit FakeImage(const sampler::PythonLayout& layout) : layout_(layout) {}

    bool read(std::uint64_t addr, void* dest, std::size_t len) override {
        auto it = regions_.upper_bound(addr);
        if (it == regions_.begin()) return false;
        --it;
        if (addr + len > it->first + it->second.size()) return false;
        std::memcpy(dest, it->second.data() + (addr - it->first), len);
        return true;
    }

    // A zeroed object of `size` bytes with `before` bytes of its own in front of it.
    std::uint64_t alloc(std::size_t size, std::size_t before = 0) {
        std::uint64_t start = next_;
        next_ += (before + size + 0x100) & ~std::uint64_t{0xff};
        next_ += 0x1000;  // a gap, so that overruns fail
        regions_[start].resize(before + size);
        return start + before;
    }

    template <typename T>
    void put(std::uint64_t addr, T value) {
        auto it = std::prev(regions_.upper_bound(addr));
        REQUIRE(addr + sizeof(T) <= it->first + it->second.size());
        std::memcpy(it->second.data() + (addr - it->first), &value, sizeof(T));
    }

    std::uint64_t type(const std::string& name, std::uint64_t flags = 0, std::int64_t basicsize = 16,
                       std::int64_t dictoffset = 0, std::uint64_t cached_keys = 0) {
        auto it = type_names_.find(name);
        if (it != type_names_.end() && flags == 0) return it->second;
        std::uint64_t text = alloc(64);  // names are read a few bytes at a time, as from a page
        for (std::size_t i = 0; i < name.size(); ++i) put(text + i, name[i]);
        std::uint64_t type = alloc(1024);
        put(type + 24, text);
        put(type + 32, basicsize);
        put(type + 168, flags);
        put(type + 288, dictoffset);
        if (layout_.heap_cached_keys >= 0)
            put(type + static_cast<std::uint64_t>(layout_.heap_cached_keys), cached_keys);
        if (flags == 0) type_names_[name] = type;
        return type;
    }

    std::uint64_t object(std::uint64_t type, std::size_t size, std::size_t before = 0) {
        std::uint64_t object = alloc(size, before);
        put(object + 8, type);
        return object;
    }

    // A compact str (3.x) or a PyStringObject (2.7).
    std::uint64_t str(const std::string& text) {
        if (layout_.major < 3) {
            std::uint64_t object = this->object(type("str"), 37 + text.size());
            put(object + 16, static_cast<std::int64_t>(text.size()));
            for (std::size_t i = 0; i < text.size(); ++i) put(object + 36 + i, text[i]);
            return object;
        }
        std::uint64_t object = this->object(type("str"), 41 + text.size());
        put(object + 16, static_cast<std::int64_t>(text.size()));
        put(object + 32, std::uint32_t{(1u << 2) | (1u << 5) | (1u << 6)});  // kind 1, compact, ascii
        for (std::size_t i = 0; i < text.size(); ++i) put(object + 40 + i, text[i]);
        return object;
    }

    // An int of 30-bit digits, its size as ob_size or lv_tag.
    std::uint64_t long_int(std::uint64_t value, bool lv_tag, const char* name = "int") {
        std::vector<std::uint32_t> digits;
        for (std::uint64_t rest = value; rest != 0; rest >>= 30)
            digits.push_back(static_cast<std::uint32_t>(rest & 0x3fffffff));
        std::uint64_t object = this->object(type(name), 24 + 4 * std::max<std::size_t>(1, digits.size()));
        std::uint64_t size = lv_tag ? (digits.empty() ? 1 : digits.size() << 3) : digits.size();
        put(object + 16, size);
        for (std::size_t i = 0; i < digits.size(); ++i) put(object + 24 + 4 * i, digits[i]);
        return object;
    }

    std::uint64_t dict_object(std::uint64_t keys, std::uint64_t values) {
        std::uint64_t dict = object(type("dict"), 48);
        put(dict + 32, keys);
        put(dict + 40, values);
        return dict;
    }

    // 3.6-3.10 keys: dk_size slots of indices of `index_bytes` each, then (hash, key, value).
    std::uint64_t keys_36(const std::vector<DictItem>& items, std::uint64_t size, std::size_t index_bytes) {
        std::uint64_t keys = alloc(40 + size * index_bytes + items.size() * 24);
        put(keys + 8, size);
        put(keys + 32, static_cast<std::int64_t>(items.size()));
        std::uint64_t entries = keys + 40 + size * index_bytes;
        for (std::size_t i = 0; i < items.size(); ++i) {
            put(entries + 24 * i + 8, items[i].key);
            put(entries + 24 * i + 16, items[i].value);
        }
        return keys;
    }

    // 3.11+ keys of a kind: 0 general (hash, key, value), 1 unicode and 2 split (key, value).
    std::uint64_t keys_311(const std::vector<DictItem>& items, std::uint8_t log2_size, std::uint8_t kind) {
        std::uint8_t log2_index_bytes = static_cast<std::uint8_t>(log2_size + (log2_size >= 8 ? 1 : 0));
        std::size_t entry = kind == 0 ? 24 : 16;
        std::uint64_t keys = alloc(32 + (std::size_t{1} << log2_index_bytes) + items.size() * entry);
        put(keys + 8, log2_size);
        put(keys + 9, log2_index_bytes);
        put(keys + 10, kind);
        put(keys + 24, static_cast<std::int64_t>(items.size()));
        std::uint64_t entries = keys + 32 + (std::uint64_t{1} << log2_index_bytes);
        std::size_t key_at = kind == 0 ? 8 : 0;
        for (std::size_t i = 0; i < items.size(); ++i) {
            put(entries + entry * i + key_at, items[i].key);
            put(entries + entry * i + key_at + 8, items[i].value);
        }
        return keys;
    }

    std::uint64_t pointers(const std::vector<std::uint64_t>& values, std::size_t header = 0) {
        std::uint64_t array = alloc(header + 8 * values.size());
        for (std::size_t i = 0; i < values.size(); ++i) put(array + header + 8 * i, values[i]);
        return array;
    }

private:
    const sampler::PythonLayout& layout_;
    std::map<std::uint64_t, std::vector<std::uint8_t>> regions_;
    std::map<std::string, std::uint64_t> type_names_;
    std::uint64_t next_ = 0x10000;
};

inline symbolize::CodeObjectLayout string_layout(int major) {
    symbolize::CodeObjectLayout strings;
    strings.unicode_length = 16;
    strings.unicode_state = 32;
    strings.unicode_ascii_data = 40;
    strings.unicode_compact_data = 56;
    strings.bytes_size = 16;
    strings.bytes_data = major < 3 ? 36 : 32;
    return strings;
}

inline const sampler::PythonLayout& layout_of(int major, int minor) {
    static std::map<std::pair<int, int>, sampler::PythonLayout> layouts;
    const auto layout = sampler::find_layout(major, minor);
    REQUIRE(layout.has_value());
    return layouts.try_emplace({major, minor}, *layout).first->second;
}

}  // namespace pysample::testing
