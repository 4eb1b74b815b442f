#include "model/locals.hpp"

#include <algorithm>
#include <bit>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstring>

namespace pysample::sampler {
namespace {

constexpr std::size_t kMaxNameChars = 128;
constexpr int kTaggedIntShift = 2;  // Py_TAGGED_SHIFT of 3.14+'s _PyStackRef

std::uint64_t at(std::uint64_t base, std::int64_t offset) { return base + static_cast<std::uint64_t>(offset); }

std::string hex_address(std::uint64_t address) {
    char text[24];
    std::snprintf(text, sizeof(text), "0x%llx", static_cast<unsigned long long>(address));
    return text;
}

void append_escape(std::string& out, char letter, std::uint32_t value, int width) {
    char text[16];
    std::snprintf(text, sizeof(text), "\\%c%0*x", letter, width, value);
    out += text;
}

// Which quote repr() uses: single, unless the text has single quotes and no double ones.
template <typename T>
char quote_for(std::span<const T> units) {
    bool single = std::find(units.begin(), units.end(), T{'\''}) != units.end();
    bool dbl = std::find(units.begin(), units.end(), T{'"'}) != units.end();
    return single && !dbl ? '"' : '\'';
}

// Escapes shared by every repr: the quote, the backslash, tab, newline, carriage return and the
// other ASCII control characters. False when `unit` is none of them.
bool append_ascii_escape(std::string& out, std::uint32_t unit, char quote) {
    switch (unit) {
        case '\t': out += "\\t"; return true;
        case '\n': out += "\\n"; return true;
        case '\r': out += "\\r"; return true;
        case '\\': out += "\\\\"; return true;
        default: break;
    }
    if (unit == static_cast<std::uint32_t>(quote)) {
        out += '\\';
        out += quote;
        return true;
    }
    if (unit < 0x20 || unit == 0x7f) {
        append_escape(out, 'x', unit, 2);
        return true;
    }
    return false;
}

// str.isprintable() for non-ASCII characters, approximated without Unicode's tables: the C1
// controls, spaces other than ' ', format characters, separators, surrogates, private use and
// non-characters are escaped.
bool is_printable(std::uint32_t cp) {
    if (cp <= 0xa0) return false;
    if (cp == 0xad || cp == 0x1680 || cp == 0x180e || cp == 0x3000 || cp == 0xfeff) return false;
    if ((cp >= 0x2000 && cp <= 0x200f) || (cp >= 0x2028 && cp <= 0x202f) || (cp >= 0x205f && cp <= 0x206f)) {
        return false;
    }
    if (cp >= 0xd800 && cp <= 0xf8ff) return false;  // surrogates and private use
    if (cp >= 0xfff9 && cp <= 0xffff) return false;
    if ((cp & 0xfffe) == 0xfffe || (cp >= 0xe0000 && cp <= 0xe007f) || cp >= 0xf0000) return false;
    return true;
}

void append_non_ascii(std::string& out, std::uint32_t cp, repr::TextStyle style) {
    if (style == repr::TextStyle::Str && is_printable(cp)) {
        symbolize::append_utf8(out, cp);
    } else if (cp <= 0xff) {
        append_escape(out, 'x', cp, 2);
    } else if (cp <= 0xffff) {
        append_escape(out, 'u', cp, 4);
    } else {
        append_escape(out, 'U', cp, 8);
    }
}

std::string unreadable() { return "<unreadable>"; }

}  // namespace

namespace repr {

std::string python_float(double value) {
    if (std::isnan(value)) return "nan";
    if (std::isinf(value)) return value < 0 ? "-inf" : "inf";
    if (value == 0) return std::signbit(value) ? "-0.0" : "0.0";
    char buffer[64];
    auto result = std::to_chars(buffer, buffer + sizeof(buffer), value, std::chars_format::scientific);
    std::string_view shortest(buffer, static_cast<std::size_t>(result.ptr - buffer));  // "-1.25e+17"
    bool negative = shortest.front() == '-';
    if (negative) shortest.remove_prefix(1);
    auto e = shortest.find('e');
    std::string digits;
    for (char c : shortest.substr(0, e)) {
        if (c != '.') digits += c;
    }
    int exponent = 0;
    std::from_chars(shortest.data() + e + (shortest[e + 1] == '+' ? 2 : 1), shortest.data() + shortest.size(),
                    exponent);
    // As Python's float_repr_style 'short': digits d1d2... mean 0.d1d2... * 10**decimal_point, and
    // positions from -4 (exclusive) to 16 print without an exponent.
    int decimal_point = exponent + 1;
    auto count = static_cast<int>(digits.size());
    std::string out = negative ? "-" : "";
    if (decimal_point > -4 && decimal_point <= 16) {
        if (decimal_point <= 0) {
            out += "0." + std::string(static_cast<std::size_t>(-decimal_point), '0') + digits;
        } else if (decimal_point >= count) {
            out += digits + std::string(static_cast<std::size_t>(decimal_point - count), '0') + ".0";
        } else {
            auto split = static_cast<std::size_t>(decimal_point);
            out += digits.substr(0, split) + "." + digits.substr(split);
        }
        return out;
    }
    out += digits.substr(0, 1);
    if (count > 1) out += "." + digits.substr(1);
    char suffix[16];
    std::snprintf(suffix, sizeof(suffix), "e%c%02d", exponent < 0 ? '-' : '+', std::abs(exponent));
    return out + suffix;
}

// Horner's scheme into base 10**9 limbs, most significant digit first.
std::string decimal(std::span<const std::uint32_t> digits, int shift, bool negative) {
    constexpr std::uint64_t kBase = 1000000000;
    std::vector<std::uint32_t> limbs;  // least significant first
    for (auto digit = digits.rbegin(); digit != digits.rend(); ++digit) {
        std::uint64_t carry = *digit;
        for (auto& limb : limbs) {
            std::uint64_t value = (static_cast<std::uint64_t>(limb) << shift) + carry;
            limb = static_cast<std::uint32_t>(value % kBase);
            carry = value / kBase;
        }
        for (; carry != 0; carry /= kBase) limbs.push_back(static_cast<std::uint32_t>(carry % kBase));
    }
    if (limbs.empty()) return "0";
    std::string out = negative ? "-" : "";
    out += std::to_string(limbs.back());
    for (auto limb = limbs.rbegin() + 1; limb != limbs.rend(); ++limb) {
        char part[16];
        std::snprintf(part, sizeof(part), "%09u", *limb);
        out += part;
    }
    return out;
}

std::string text(std::span<const std::uint32_t> code_points, std::uint64_t length, TextStyle style) {
    char quote = quote_for(code_points);
    std::string out = style == TextStyle::Py2Unicode ? "u" : "";
    out += quote;
    for (std::uint32_t cp : code_points) {
        if (append_ascii_escape(out, cp, quote)) continue;
        if (cp < 0x80) {
            out += static_cast<char>(cp);
        } else {
            append_non_ascii(out, cp, style);
        }
    }
    out += quote;
    if (length > code_points.size()) out += "... (" + std::to_string(length) + " chars)";
    return out;
}

std::string bytes(std::span<const std::uint8_t> data, std::uint64_t length, bool b_prefix) {
    char quote = quote_for(data);
    std::string out = b_prefix ? "b" : "";
    out += quote;
    for (std::uint8_t byte : data) {
        if (append_ascii_escape(out, byte, quote)) continue;
        if (byte < 0x80) {
            out += static_cast<char>(byte);
        } else {
            append_escape(out, 'x', byte, 2);
        }
    }
    out += quote;
    if (length > data.size()) out += "... (" + std::to_string(length) + " bytes)";
    return out;
}

}  // namespace repr

ValueFormatter::ValueFormatter(attach::Memory& memory, const PythonProcess& process)
    : ValueFormatter(memory, process.layout(), process.builtins(), process.code_layout(),
                     process.facts().python2_objects) {}

ValueFormatter::ValueFormatter(attach::Memory& memory, const PythonLayout& layout, const BuiltinObjects& builtins,
                               symbolize::CodeObjectLayout strings, bool python2)
    : memory_(memory),
      layout_(layout),
      builtins_(builtins),
      strings_(strings),
      python2_(python2),
      objects_(memory, layout, strings, 0) {}

template <typename T>
std::optional<T> ValueFormatter::field(std::uint64_t object, std::int64_t offset) {
    T value{};
    if (offset < 0 || !memory_.read_value(at(object, offset), value)) return std::nullopt;
    return value;
}

std::uint64_t ValueFormatter::type_of(std::uint64_t object) {
    return field<std::uint64_t>(object, layout_.object_type).value_or(0);
}

// Builtin types are recognised by the address of their type object, so that a subclass (an
// IntEnum, an OrderedDict) is shown as an object of its own type rather than misread.
ValueFormatter::Value ValueFormatter::format(std::uint64_t object) {
    if (object == 0) return {"<NULL>", ""};
    if (object == builtins_.none) return {"None", "NoneType"};
    if (object == builtins_.true_object) return {"True", "bool"};
    if (object == builtins_.false_object) return {"False", "bool"};
    std::uint64_t type = type_of(object);
    if (type == 0) return {unreadable(), ""};
    if (type == builtins_.long_type) return format_long(object);
    if (type == builtins_.int_type) return format_py2_int(object);
    if (type == builtins_.bool_type) return format_bool(object);
    if (type == builtins_.float_type) return format_float(object);
    if (type == builtins_.unicode_type) return python2_ ? format_py2_unicode(object) : format_str(object);
    if (type == builtins_.bytes_type) return format_bytes(object);
    if (type == builtins_.list_type) return format_sized(object, layout_.var_size, "list");
    if (type == builtins_.tuple_type) return format_sized(object, layout_.var_size, "tuple");
    if (type == builtins_.dict_type) return format_sized(object, layout_.dict_used, "dict");
    if (type == builtins_.set_type) return format_sized(object, layout_.set_used, "set");
    if (type == builtins_.frozenset_type) return format_sized(object, layout_.set_used, "frozenset");
    return format_other(object, type);
}

ValueFormatter::Value ValueFormatter::format_long(std::uint64_t object) {
    std::string type = python2_ ? "long" : "int";
    auto read = objects_.int_digits(object, kMaxExactIntDigits);
    if (!read) return {unreadable(), type};
    if (read->digits.size() < read->count) {
        auto bits = (read->count - 1) * static_cast<std::uint64_t>(read->shift) +
                    static_cast<std::uint64_t>(std::bit_width(read->digits[0]));
        return {"<" + type + ", " + std::to_string(bits) + " bits" + (read->negative ? ", negative>" : ">"), type};
    }
    return {repr::decimal(read->digits, read->shift, read->negative) + (python2_ ? "L" : ""), type};
}

ValueFormatter::Value ValueFormatter::format_py2_int(std::uint64_t object) {
    auto value = field<std::int64_t>(object, layout_.int_value);
    return {value ? std::to_string(*value) : unreadable(), "int"};
}

// True and False are known by address; a bool at another address is read as the int it is.
ValueFormatter::Value ValueFormatter::format_bool(std::uint64_t object) {
    std::optional<bool> truth;
    if (python2_) {
        if (auto value = field<std::int64_t>(object, layout_.int_value)) truth = *value != 0;
    } else if (layout_.long_non_size_bits >= 0) {
        if (auto tag = field<std::uint64_t>(object, layout_.long_size))
            truth = (*tag >> layout_.long_non_size_bits) != 0;
    } else if (auto size = field<std::int64_t>(object, layout_.long_size)) {
        truth = *size != 0;
    }
    if (!truth) return {unreadable(), "bool"};
    return {*truth ? "True" : "False", "bool"};
}

ValueFormatter::Value ValueFormatter::format_float(std::uint64_t object) {
    auto value = objects_.float_value(object);
    return {value ? repr::python_float(*value) : unreadable(), "float"};
}

ValueFormatter::Value ValueFormatter::format_str(std::uint64_t object) {
    auto prefix = symbolize::read_unicode_prefix(memory_, strings_, object, kMaxReprChars);
    if (!prefix) return {unreadable(), "str"};
    return {repr::text(prefix->code_points, prefix->length, repr::TextStyle::Str), "str"};
}

// Python 2's unicode: a length and a pointer to Py_UNICODE units, UCS-2 or UCS-4 by build.
ValueFormatter::Value ValueFormatter::format_py2_unicode(std::uint64_t object) {
    auto length = field<std::int64_t>(object, layout_.unicode_py2_length);
    auto data = field<std::uint64_t>(object, layout_.unicode_py2_str);
    auto unit_size = static_cast<std::size_t>(layout_.unicode_py2_char_size);
    if (!length || !data || *length < 0 || static_cast<std::uint64_t>(*length) > kMaxObjectLength ||
        (unit_size != 2 && unit_size != 4)) {
        return {unreadable(), "unicode"};
    }
    std::size_t units = std::min(static_cast<std::size_t>(*length), kMaxReprChars);
    std::vector<std::uint8_t> raw(units * unit_size);
    if (units > 0 && (*data == 0 || !memory_.read(*data, raw.data(), raw.size()))) return {unreadable(), "unicode"};
    std::vector<std::uint32_t> code_points;
    for (std::size_t i = 0; i < units; ++i) {
        std::uint32_t unit = 0;
        std::memcpy(&unit, raw.data() + i * unit_size, unit_size);
        bool pair = unit_size == 2 && unit >= 0xd800 && unit < 0xdc00 && i + 1 < units;
        std::uint32_t low = 0;
        if (pair) std::memcpy(&low, raw.data() + (i + 1) * unit_size, unit_size);
        if (pair && low >= 0xdc00 && low < 0xe000) {
            code_points.push_back(0x10000 + ((unit - 0xd800) << 10) + (low - 0xdc00));
            ++i;
        } else {
            code_points.push_back(unit);
        }
    }
    // Surrogate pairs are one character each, as the interpreter's repr shows them.
    std::uint64_t shown_length = static_cast<std::uint64_t>(*length) - (units - code_points.size());
    return {repr::text(code_points, shown_length, repr::TextStyle::Py2Unicode), "unicode"};
}

ValueFormatter::Value ValueFormatter::format_bytes(std::uint64_t object) {
    std::string type = python2_ ? "str" : "bytes";
    auto value = objects_.bytes_value(object, kMaxReprChars);
    if (!value) return {unreadable(), type};
    return {repr::bytes(value->data, value->size, !python2_), type};
}

ValueFormatter::Value ValueFormatter::format_sized(std::uint64_t object, std::int64_t size_offset, const char* type) {
    auto size = field<std::int64_t>(object, size_offset);
    if (!size || *size < 0 || static_cast<std::uint64_t>(*size) > kMaxObjectLength) return {unreadable(), type};
    return {"<" + std::string(type) + ", len " + std::to_string(*size) + ">", type};
}

ValueFormatter::Value ValueFormatter::format_other(std::uint64_t object, std::uint64_t type) {
    auto name = type_name(type);
    if (!name) return {"<object at " + hex_address(object) + ">", ""};
    return {"<" + *name + " object at " + hex_address(object) + ">", *name};
}

// tp_name, with anything but printable ASCII replaced: it is the target's data.
std::optional<std::string> ValueFormatter::type_name(std::uint64_t type) {
    auto name = objects_.type_object_name(type);
    if (!name || name->empty()) return std::nullopt;
    for (char& c : *name) {
        if (c <= ' ' || c > '~') c = '?';
    }
    return name;
}

LocalsReader::LocalsReader(attach::Memory& memory, const PythonProcess& process)
    : memory_(memory),
      layout_(process.layout()),
      builtins_(process.builtins()),
      strings_(process.code_layout()),
      code_type_(process.code_type_address()),
      python2_(process.facts().python2_objects),
      values_(memory, process) {}

std::optional<std::uint64_t> LocalsReader::pointer(std::uint64_t address) {
    std::uint64_t value = 0;
    if (!memory_.read_value(address, value)) return std::nullopt;
    return value;
}

FrameLocals LocalsReader::read(std::uint64_t frame) {
    FrameLocals out;
    std::vector<Slot> slots;
    bool ok = layout_.frame_localsplus >= 0 ? read_legacy_slots(frame, slots, out)
                                            : read_interpreter_slots(frame, slots, out);
    if (!ok) return out;
    // Up to 3.10 an argument that a closure captures is also a cell variable, and the cell holds
    // its value.
    auto is_cell_named = [&](const std::string& name) {
        return std::any_of(slots.begin(), slots.end(),
                           [&](const Slot& slot) { return slot.kind == Kind::Cell && slot.name == name; });
    };
    for (const auto& slot : slots) {
        if (slot.kind == Kind::Hidden || (slot.kind == Kind::Local && is_cell_named(slot.name))) continue;
        out.variables.push_back(describe(slot));
    }
    return out;
}

std::optional<std::uint64_t> LocalsReader::code_of(std::uint64_t frame, FrameLocals& out) {
    bool legacy = layout_.frame_localsplus >= 0;
    auto code = pointer(at(frame, legacy ? layout_.frame_code : layout_.iframe_code));
    // From 3.14 the code pointer is a _PyStackRef, as in the stack walk.
    if (code && layout_.stackref_tag_bits >= 0) *code &= ~static_cast<std::uint64_t>(layout_.stackref_tag_bits);
    if (!code || *code == 0 || (code_type_ != 0 && values_.type_of(*code) != code_type_)) {
        out.error = "the code object of the frame at " + hex_address(frame) + " cannot be read";
        return std::nullopt;
    }
    return code;
}

// Up to 3.10 f_localsplus holds co_varnames' values, then co_cellvars' cells, then co_freevars'.
bool LocalsReader::read_legacy_slots(std::uint64_t frame, std::vector<Slot>& slots, FrameLocals& out) {
    auto code = code_of(frame, out);
    if (!code) return false;
    const std::pair<std::int64_t, Kind> groups[] = {
        {layout_.code_varnames, Kind::Local}, {layout_.code_cellvars, Kind::Cell}, {layout_.code_freevars, Kind::Free}};
    for (auto [offset, kind] : groups) {
        auto tuple = pointer(at(*code, offset));
        if (!tuple || !read_names(*tuple, kind, slots, out)) {
            out.error = "the variable names of the code object at " + hex_address(*code) + " cannot be read";
            return false;
        }
    }
    return read_values(at(frame, layout_.frame_localsplus), slots, out);
}

// From 3.11 co_localsplusnames names every slot of localsplus and co_localspluskinds says what
// each is.
bool LocalsReader::read_interpreter_slots(std::uint64_t frame, std::vector<Slot>& slots, FrameLocals& out) {
    auto code = code_of(frame, out);
    if (!code) return false;
    auto names = pointer(at(*code, layout_.code_localsplusnames));
    auto kinds = pointer(at(*code, layout_.code_localspluskinds));
    std::int64_t kinds_size = -1;
    if (!names || !kinds || !read_names(*names, Kind::Local, slots, out) ||
        !memory_.read_value(at(*kinds, layout_.bytes_size), kinds_size) ||
        static_cast<std::uint64_t>(kinds_size) != slots.size() + out.omitted) {
        out.error = "the variable names of the code object at " + hex_address(*code) + " cannot be read";
        return false;
    }
    std::vector<std::uint8_t> kind_bytes(slots.size());
    if (!memory_.read(at(*kinds, layout_.bytes_data), kind_bytes.data(), kind_bytes.size())) {
        out.error = "the variable kinds of the code object at " + hex_address(*code) + " cannot be read";
        return false;
    }
    for (std::size_t i = 0; i < slots.size(); ++i) {
        std::int64_t kind = kind_bytes[i];
        if (layout_.fast_hidden >= 0 && (kind & layout_.fast_hidden) != 0) {
            slots[i].kind = Kind::Hidden;
        } else if ((kind & layout_.fast_free) != 0) {
            slots[i].kind = Kind::Free;
        } else if ((kind & layout_.fast_cell) != 0) {
            slots[i].kind = Kind::Cell;
        }
    }
    return read_values(at(frame, layout_.iframe_localsplus), slots, out);
}

bool LocalsReader::read_names(std::uint64_t tuple, Kind kind, std::vector<Slot>& slots, FrameLocals& out) {
    std::int64_t size = -1;
    if (tuple == 0 || !memory_.read_value(at(tuple, layout_.var_size), size) || size < 0 ||
        static_cast<std::uint64_t>(size) > kMaxObjectLength) {
        return false;
    }
    std::size_t room = kMaxLocals - std::min(kMaxLocals, slots.size());
    std::size_t kept = std::min(static_cast<std::size_t>(size), room);
    out.omitted += static_cast<std::size_t>(size) - kept;
    std::vector<std::uint64_t> items(kept);
    if (!memory_.read(at(tuple, layout_.tuple_items), items.data(), items.size() * sizeof(std::uint64_t))) return false;
    auto read_string = python2_ ? symbolize::read_byte_string : symbolize::read_unicode;
    for (std::uint64_t item : items) {
        auto name = read_string(memory_, strings_, item, kMaxNameChars);
        slots.push_back({name.value_or("?"), kind, 0});
    }
    return true;
}

bool LocalsReader::read_values(std::uint64_t first, std::vector<Slot>& slots, FrameLocals& out) {
    std::vector<std::uint64_t> words(slots.size());
    if (!memory_.read(first, words.data(), words.size() * sizeof(std::uint64_t))) {
        out.error = "the variables of the frame at " + hex_address(first) + " cannot be read";
        return false;
    }
    for (std::size_t i = 0; i < slots.size(); ++i) slots[i].value = words[i];
    return true;
}

// A cell (a variable that closures share) shows its content. From 3.14 a slot is a _PyStackRef:
// tag bits below the pointer, or a small int stored in the word itself.
LocalVariable LocalsReader::describe(const Slot& slot) {
    LocalVariable variable{slot.name, "<unbound>", ""};
    std::uint64_t object = slot.value;
    if (layout_.stackref_tag_bits >= 0) {
        auto tag_bits = static_cast<std::uint64_t>(layout_.stackref_tag_bits);
        if (layout_.stackref_int_tag >= 0 &&
            (object & tag_bits) == static_cast<std::uint64_t>(layout_.stackref_int_tag)) {
            variable.repr = std::to_string(static_cast<std::int64_t>(object) >> kTaggedIntShift);
            variable.type = "int";
            return variable;
        }
        object &= ~tag_bits;
    }
    if (object == 0) return variable;
    if (slot.kind != Kind::Local && builtins_.cell_type != 0 && values_.type_of(object) == builtins_.cell_type) {
        auto content = pointer(at(object, layout_.cell_ref));
        if (!content) {
            variable.repr = unreadable();
            return variable;
        }
        if (*content == 0) return variable;  // an empty cell: not assigned yet
        object = *content;
    }
    auto value = values_.format(object);
    variable.repr = std::move(value.repr);
    variable.type = std::move(value.type);
    return variable;
}

}  // namespace pysample::sampler
