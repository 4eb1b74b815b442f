// The _Py_DebugOffsets that CPython 3.13+ keeps at the start of _PyRuntime: the interpreter's own
// description of its struct layouts, for tools that read it from outside.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "attach/memory.hpp"
#include "model/layout.hpp"

namespace pysample::sampler {

struct DebugOffsets {
    std::uint64_t version_hex = 0;  // PY_VERSION_HEX of the running interpreter
    bool free_threaded = false;
    std::vector<std::uint64_t> words;  // the struct as 64-bit words, word 0 being the cookie

    int major() const { return static_cast<int>(version_hex >> 24); }
    int minor() const { return static_cast<int>((version_hex >> 16) & 0xff); }
};

// Reads the struct at `runtime_address`; nullopt when the cookie is not there (before 3.13, or not
// a runtime at all).
std::optional<DebugOffsets> read_debug_offsets(attach::Memory& memory, std::uint64_t runtime_address);
// Parses the words as read; nullopt without the cookie.
std::optional<DebugOffsets> parse_debug_offsets(std::span<const std::uint64_t> words);

struct LayoutCheck {
    bool understood = false;               // this pysample knows the struct's shape for that version
    std::vector<std::string> differences;  // "field: table T, interpreter I"
    std::vector<std::string> ignored;      // groups of optional fields whose published values are implausible
};

// Compares the fields pysample reads with what the interpreter publishes and, where both are
// plausible and they differ, takes the interpreter's values: it knows its own build (a patch
// release or a distribution's patches may move a field).
LayoutCheck apply_debug_offsets(const DebugOffsets& offsets, PythonLayout& layout);

}  // namespace pysample::sampler
