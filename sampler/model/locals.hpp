// The local variables of a target's frames, with short reprs of their values. Every value costs a
// bounded number of bytes read, however large the object.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "attach/memory.hpp"
#include "model/pydict.hpp"
#include "model/python_process.hpp"

namespace pysample::sampler {

inline constexpr std::size_t kMaxReprChars = 64;      // characters of a str, bytes of a bytes object
inline constexpr std::size_t kMaxExactIntDigits = 8;  // PyLong digits (240 bits) printed exactly
inline constexpr std::size_t kMaxLocals = 256;        // variables shown per frame

struct LocalVariable {
    std::string name;
    std::string repr;  // "<unbound>" while the variable has no value
    std::string type;  // the value's type name; empty when unbound or unreadable
};

struct FrameLocals {
    std::vector<LocalVariable> variables;  // locals, then cell variables, then free variables
    std::size_t omitted = 0;               // variables beyond kMaxLocals
    std::string error;                     // why none could be read; empty when they were
};

// repr() of simple values, from what was read of them.
namespace repr {
// Python's shortest round-trip repr: 0.1, 1e+16, 1e-05, -0.0, inf, nan.
std::string python_float(double value);
// An integer from its digits, least significant first, each holding `shift` bits.
std::string decimal(std::span<const std::uint32_t> digits, int shift, bool negative);
enum class TextStyle {
    Str,        // Python 3's str: printable characters kept, the others escaped
    Py2Unicode  // Python 2's unicode: u'...', every non-ASCII character escaped
};
// A string of `length` characters of which `code_points` were read; longer ones end in "...".
std::string text(std::span<const std::uint32_t> code_points, std::uint64_t length, TextStyle style);
// A byte string of `length` bytes of which `data` were read: b'...' (Python 3's bytes) or '...'
// (Python 2's str).
std::string bytes(std::span<const std::uint8_t> data, std::uint64_t length, bool b_prefix);
}  // namespace repr

// Describes objects of the target as a short repr and a type name.
class ValueFormatter {
public:
    ValueFormatter(attach::Memory& memory, const PythonProcess& process);
    ValueFormatter(attach::Memory& memory, const PythonLayout& layout, const BuiltinObjects& builtins,
                   symbolize::CodeObjectLayout strings, bool python2);

    struct Value {
        std::string repr;
        std::string type;
    };
    Value format(std::uint64_t object);
    // The type object of `object`; 0 when it cannot be read.
    std::uint64_t type_of(std::uint64_t object);

private:
    Value format_long(std::uint64_t object);
    Value format_py2_int(std::uint64_t object);
    Value format_bool(std::uint64_t object);
    Value format_float(std::uint64_t object);
    Value format_str(std::uint64_t object);
    Value format_py2_unicode(std::uint64_t object);
    Value format_bytes(std::uint64_t object);
    Value format_sized(std::uint64_t object, std::int64_t size_offset, const char* type);
    Value format_other(std::uint64_t object, std::uint64_t type);
    std::optional<std::string> type_name(std::uint64_t type);
    template <typename T>
    std::optional<T> field(std::uint64_t object, std::int64_t offset);

    attach::Memory& memory_;
    const PythonLayout& layout_;
    const BuiltinObjects& builtins_;
    symbolize::CodeObjectLayout strings_;
    bool python2_;
    ObjectReader objects_;
};

// Reads the local, cell and free variables of a frame: a PyFrameObject up to 3.10, a
// _PyInterpreterFrame from 3.11.
class LocalsReader {
public:
    LocalsReader(attach::Memory& memory, const PythonProcess& process);

    FrameLocals read(std::uint64_t frame);

private:
    enum class Kind { Local, Cell, Free, Hidden };
    struct Slot {
        std::string name;
        Kind kind = Kind::Local;
        std::uint64_t value = 0;  // the slot's word: a PyObject*, or a _PyStackRef from 3.14
    };

    bool read_legacy_slots(std::uint64_t frame, std::vector<Slot>& slots, FrameLocals& out);
    bool read_interpreter_slots(std::uint64_t frame, std::vector<Slot>& slots, FrameLocals& out);
    std::optional<std::uint64_t> code_of(std::uint64_t frame, FrameLocals& out);
    // Appends the names of the tuple at `tuple`, as `kind`, up to kMaxLocals slots in all.
    bool read_names(std::uint64_t tuple, Kind kind, std::vector<Slot>& slots, FrameLocals& out);
    bool read_values(std::uint64_t first, std::vector<Slot>& slots, FrameLocals& out);
    LocalVariable describe(const Slot& slot);
    std::optional<std::uint64_t> pointer(std::uint64_t address);

    attach::Memory& memory_;
    const PythonLayout& layout_;
    const BuiltinObjects& builtins_;
    symbolize::CodeObjectLayout strings_;
    std::uint64_t code_type_;
    bool python2_;
    ValueFormatter values_;
};

}  // namespace pysample::sampler
