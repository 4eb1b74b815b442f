#include <doctest/doctest.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <deque>
#include <limits>
#include <string>
#include <vector>

#include "attach/memory.hpp"
#include "model/layout.hpp"
#include "model/locals.hpp"

using namespace pysample;
using namespace pysample::sampler;

namespace {

std::vector<std::uint32_t> code_points(const std::u32string& text) { return {text.begin(), text.end()}; }

std::vector<std::uint8_t> byte_vector(const std::string& text) { return {text.begin(), text.end()}; }

// Objects laid out as a given CPython lays them out, in this process's own memory, read back
// through the live-process reader as the target's would be.
class FakeHeap {
public:
    explicit FakeHeap(int major, int minor) : layout(find_layout(major, minor).value()) {
        strings.unicode_length = layout.unicode_length;
        strings.unicode_state = layout.unicode_state;
        strings.unicode_ascii_data = layout.unicode_ascii_data;
        strings.unicode_compact_data = layout.unicode_compact_data;
        strings.unicode_legacy_data = layout.unicode_legacy_data;
        strings.bytes_size = layout.bytes_size;
        strings.bytes_data = layout.bytes_data;
        builtins.none = object(nullptr, 16);
        builtins.true_object = object(nullptr, 32);
        builtins.false_object = object(nullptr, 32);
        builtins.long_type = type("int");
        builtins.int_type = major < 3 ? type("int") : 0;
        builtins.bool_type = type("bool");
        builtins.float_type = type("float");
        builtins.unicode_type = type("str");
        builtins.bytes_type = type("bytes");
        builtins.list_type = type("list");
        builtins.tuple_type = type("tuple");
        builtins.dict_type = type("dict");
        builtins.set_type = type("set");
        builtins.frozenset_type = type("frozenset");
        builtins.cell_type = type("cell");
    }

    std::uint64_t type(const std::string& name) {
        auto& text = blocks_.emplace_back(name.begin(), name.end());
        text.push_back(0);
        std::uint64_t type = object(nullptr, 64);
        put(type, layout.type_name, reinterpret_cast<std::uint64_t>(text.data()));
        return type;
    }

    // An object of `type` with `size` bytes, zeroed.
    std::uint64_t object(const std::uint64_t* type, std::size_t size) {
        auto& block = blocks_.emplace_back(size, 0);
        auto address = reinterpret_cast<std::uint64_t>(block.data());
        if (type != nullptr) put(address, layout.object_type, *type);
        return address;
    }

    template <typename T>
    void put(std::uint64_t object, std::int64_t offset, T value) {
        std::memcpy(reinterpret_cast<void*>(object + static_cast<std::uint64_t>(offset)), &value, sizeof(value));
    }

    // A PyLongObject from its digits (least significant first) and sign.
    std::uint64_t long_object(const std::vector<std::uint32_t>& digits, int sign) {
        std::uint64_t o = object(&builtins.long_type, 32 + 4 * digits.size());
        if (layout.long_non_size_bits >= 0) {
            std::uint64_t sign_bits = sign > 0 ? 0 : sign == 0 ? 1 : 2;
            put(o, layout.long_size, (digits.size() << layout.long_non_size_bits) | sign_bits);
        } else {
            put(o, layout.long_size, static_cast<std::int64_t>(digits.size()) * sign);
        }
        for (std::size_t i = 0; i < digits.size(); ++i) {
            put(o, layout.long_digits + static_cast<std::int64_t>(4 * i), digits[i]);
        }
        return o;
    }

    // A compact str of characters of one `kind` (1, 2 or 4 bytes).
    std::uint64_t str(const std::u32string& text, unsigned kind) {
        bool ascii = kind == 1 && std::all_of(text.begin(), text.end(), [](char32_t c) { return c < 0x80; });
        std::int64_t data = ascii ? layout.unicode_ascii_data : layout.unicode_compact_data;
        std::uint64_t o = object(&builtins.unicode_type, static_cast<std::size_t>(data) + (text.size() + 1) * kind);
        put(o, layout.unicode_length, static_cast<std::int64_t>(text.size()));
        put(o, layout.unicode_state, std::uint32_t{(kind << 2) | (1u << 5) | (ascii ? 1u << 6 : 0u)});
        for (std::size_t i = 0; i < text.size(); ++i) {
            auto cp = static_cast<std::uint32_t>(text[i]);
            std::memcpy(reinterpret_cast<void*>(o + static_cast<std::uint64_t>(data) + i * kind), &cp, kind);
        }
        return o;
    }

    std::uint64_t bytes(const std::string& data) {
        std::uint64_t o = object(&builtins.bytes_type, static_cast<std::size_t>(layout.bytes_data) + data.size() + 1);
        put(o, layout.bytes_size, static_cast<std::int64_t>(data.size()));
        std::memcpy(reinterpret_cast<void*>(o + static_cast<std::uint64_t>(layout.bytes_data)), data.data(),
                    data.size());
        return o;
    }

    std::uint64_t sized(std::uint64_t type, std::int64_t offset, std::int64_t size) {
        std::uint64_t o = object(&type, 64);
        put(o, offset, size);
        return o;
    }

    PythonLayout layout;
    symbolize::CodeObjectLayout strings;
    BuiltinObjects builtins;

private:
    std::deque<std::vector<std::uint8_t>> blocks_;  // a deque keeps earlier blocks in place
};

struct Formatted {
    std::string repr;
    std::string type;
};

Formatted format(FakeHeap& heap, std::uint64_t object, bool python2 = false) {
    attach::ProcessMemory memory(::getpid());
    ValueFormatter formatter(memory, heap.layout, heap.builtins, heap.strings, python2);
    auto value = formatter.format(object);
    return {value.repr, value.type};
}

}  // namespace

TEST_CASE("floats print as Python's shortest round-trip repr") {
    CHECK(repr::python_float(0.1) == "0.1");
    CHECK(repr::python_float(3.25) == "3.25");
    CHECK(repr::python_float(100.0) == "100.0");
    CHECK(repr::python_float(123.456) == "123.456");
    CHECK(repr::python_float(1.0 / 3) == "0.3333333333333333");
    CHECK(repr::python_float(1e15) == "1000000000000000.0");
    CHECK(repr::python_float(1e16) == "1e+16");
    CHECK(repr::python_float(1e22) == "1e+22");
    CHECK(repr::python_float(123456789012345678.0) == "1.2345678901234568e+17");
    CHECK(repr::python_float(0.0001) == "0.0001");
    CHECK(repr::python_float(0.00001) == "1e-05");
    CHECK(repr::python_float(1.5e-7) == "1.5e-07");
    CHECK(repr::python_float(-2.5e-300) == "-2.5e-300");
    CHECK(repr::python_float(5e-324) == "5e-324");
    CHECK(repr::python_float(std::numeric_limits<double>::max()) == "1.7976931348623157e+308");
    CHECK(repr::python_float(0.0) == "0.0");
    CHECK(repr::python_float(-0.0) == "-0.0");
    CHECK(repr::python_float(std::numeric_limits<double>::infinity()) == "inf");
    CHECK(repr::python_float(-std::numeric_limits<double>::infinity()) == "-inf");
    CHECK(repr::python_float(std::nan("")) == "nan");
}

TEST_CASE("integers from 30-bit and 15-bit digits") {
    CHECK(repr::decimal({}, 30, false) == "0");
    CHECK(repr::decimal(std::vector<std::uint32_t>{42}, 30, true) == "-42");
    // 2**62 + 12345 = 4 * 2**60 + 12345
    CHECK(repr::decimal(std::vector<std::uint32_t>{12345, 0, 4}, 30, false) == "4611686018427400249");
    // -(2**100) - 1: digits of 2**100 + 1 are 1, 0, 0, 1024
    CHECK(repr::decimal(std::vector<std::uint32_t>{1, 0, 0, 1 << 10}, 30, true) == "-1267650600228229401496703205377");
    CHECK(repr::decimal(std::vector<std::uint32_t>{0, 0, 1}, 15, false) == "1073741824");  // 2**30
    CHECK(repr::decimal(std::vector<std::uint32_t>{0, 1}, 30, false) == "1073741824");
}

TEST_CASE("str reprs quote and escape as Python's repr does") {
    using repr::TextStyle;
    CHECK(repr::text(code_points(U"hello"), 5, TextStyle::Str) == "'hello'");
    CHECK(repr::text(code_points(U"it's"), 4, TextStyle::Str) == "\"it's\"");
    CHECK(repr::text(code_points(U"it's \"x\""), 8, TextStyle::Str) == "'it\\'s \"x\"'");
    CHECK(repr::text(code_points(U"a\tb\nc\rd\\e\x01\x7f"), 11, TextStyle::Str) == "'a\\tb\\nc\\rd\\\\e\\x01\\x7f'");
    CHECK(repr::text(code_points(U"caf\u00e9 \u20ac \U0001F600"), 8, TextStyle::Str) ==
          "'caf\u00e9 \u20ac \U0001F600'");
    // Not printable: C1 controls, no-break space, zero-width space, surrogates, private use.
    CHECK(repr::text(code_points(U"\x85\xa0\u200b\ue000"), 4, TextStyle::Str) == "'\\x85\\xa0\\u200b\\ue000'");
    CHECK(repr::text(code_points({0xd800}), 1, TextStyle::Str) == "'\\ud800'");
    CHECK(repr::text(code_points(U"xy"), 200, TextStyle::Str) == "'xy'... (200 chars)");
    CHECK(repr::text(code_points(U"caf\u00e9 \u20ac \U0001F600"), 8, TextStyle::Py2Unicode) ==
          "u'caf\\xe9 \\u20ac \\U0001f600'");
}

TEST_CASE("bytes reprs escape everything outside printable ASCII") {
    CHECK(repr::bytes(byte_vector(std::string("\x00"
                                              "ab'\xff",
                                              5)),
                      5, true) == "b\"\\x00ab'\\xff\"");
    CHECK(repr::bytes(byte_vector("tab\there"), 8, false) == "'tab\\there'");
    CHECK(repr::bytes(byte_vector("ab"), 100, true) == "b'ab'... (100 bytes)");
}

TEST_CASE("values of a 3.12 target: singletons, ints by lv_tag, floats, strings, containers, others") {
    FakeHeap heap(3, 12);
    CHECK(format(heap, heap.builtins.none).repr == "None");
    CHECK(format(heap, heap.builtins.true_object).repr == "True");
    CHECK(format(heap, heap.builtins.false_object).type == "bool");
    CHECK(format(heap, heap.long_object({42}, 1)).repr == "42");
    CHECK(format(heap, heap.long_object({7}, -1)).repr == "-7");
    CHECK(format(heap, heap.long_object({}, 0)).repr == "0");
    CHECK(format(heap, heap.long_object({12345, 0, 4}, 1)).repr == "4611686018427400249");
    std::vector<std::uint32_t> huge(40, 1);
    huge.back() = 5;  // 3 bits in the top digit
    auto huge_value = format(heap, heap.long_object(huge, -1));
    CHECK(huge_value.repr == "<int, " + std::to_string(39 * 30 + 3) + " bits, negative>");
    CHECK(huge_value.type == "int");

    std::uint64_t number = heap.object(&heap.builtins.float_type, 32);
    heap.put(number, heap.layout.float_value, 0.1);
    CHECK(format(heap, number).repr == "0.1");
    CHECK(format(heap, number).type == "float");

    CHECK(format(heap, heap.str(U"hello", 1)).repr == "'hello'");
    CHECK(format(heap, heap.str(U"caf\u00e9", 1)).repr == "'caf\u00e9'");
    CHECK(format(heap, heap.str(U"\u20ac!", 2)).repr == "'\u20ac!'");
    CHECK(format(heap, heap.str(U"\U0001F600", 4)).repr == "'\U0001F600'");
    auto long_text = format(heap, heap.str(std::u32string(100, U'x'), 1));
    CHECK(long_text.repr == "'" + std::string(kMaxReprChars, 'x') + "'... (100 chars)");
    CHECK(long_text.type == "str");
    CHECK(format(heap, heap.bytes("a\x01")).repr == "b'a\\x01'");

    CHECK(format(heap, heap.sized(heap.builtins.list_type, heap.layout.var_size, 3)).repr == "<list, len 3>");
    CHECK(format(heap, heap.sized(heap.builtins.tuple_type, heap.layout.var_size, 2)).repr == "<tuple, len 2>");
    CHECK(format(heap, heap.sized(heap.builtins.dict_type, heap.layout.dict_used, 5)).repr == "<dict, len 5>");
    CHECK(format(heap, heap.sized(heap.builtins.frozenset_type, heap.layout.set_used, 1)).repr == "<frozenset, len 1>");

    std::uint64_t custom_type = heap.type("Custom");
    std::uint64_t custom = heap.object(&custom_type, 16);
    char expected[64];
    std::snprintf(expected, sizeof(expected), "<Custom object at 0x%llx>", static_cast<unsigned long long>(custom));
    CHECK(format(heap, custom).repr == expected);
    CHECK(format(heap, custom).type == "Custom");

    // A subclass of int is not read as an int.
    std::uint64_t enum_type = heap.type("Color");
    CHECK(format(heap, heap.object(&enum_type, 32)).type == "Color");

    std::uint64_t no_type = 0;
    CHECK(format(heap, heap.object(&no_type, 16)).repr == "<unreadable>");
}

TEST_CASE("ints of a 3.11 target carry their sign in ob_size") {
    FakeHeap heap(3, 11);
    CHECK(format(heap, heap.long_object({7}, -1)).repr == "-7");
    CHECK(format(heap, heap.long_object({1, 0, 0, 1 << 10}, 1)).repr == "1267650600228229401496703205377");
    CHECK(format(heap, heap.long_object({}, 0)).repr == "0");
}

TEST_CASE("values of a 2.7 target: int, long, str as bytes and unicode") {
    FakeHeap heap(2, 7);
    std::uint64_t small = heap.object(&heap.builtins.int_type, 24);
    heap.put(small, heap.layout.int_value, std::int64_t{-42});
    CHECK(format(heap, small, true).repr == "-42");
    CHECK(format(heap, small, true).type == "int");
    CHECK(format(heap, heap.long_object({1, 0, 0, 1 << 10}, -1), true).repr == "-1267650600228229401496703205377L");
    CHECK(format(heap, heap.long_object({1, 0, 0, 1 << 10}, -1), true).type == "long");
    CHECK(format(heap, heap.bytes("it's"), true).repr == "\"it's\"");
    CHECK(format(heap, heap.bytes("it's"), true).type == "str");

    REQUIRE(heap.layout.unicode_py2_char_size == 4);
    std::vector<std::uint32_t> units = {'c', 'a', 'f', 0xe9};
    std::uint64_t unicode = heap.object(&heap.builtins.unicode_type, 48);
    heap.put(unicode, heap.layout.unicode_py2_length, static_cast<std::int64_t>(units.size()));
    heap.put(unicode, heap.layout.unicode_py2_str, reinterpret_cast<std::uint64_t>(units.data()));
    CHECK(format(heap, unicode, true).repr == "u'caf\\xe9'");
    CHECK(format(heap, unicode, true).type == "unicode");
}
