#include "debug_offsets.hpp"

#include <array>
#include <cstring>

namespace pysample::sampler {
namespace {

constexpr char kCookie[8] = {'x', 'd', 'e', 'b', 'u', 'g', 'p', 'y'};
constexpr std::size_t kMaxWords = 160;
constexpr std::uint64_t kMaxOffset = 1 << 16;

// Where each field pysample uses sits in the struct (in 64-bit words), per minor version. The
// struct grows between versions (3.14 and 3.15 insert fields in the middle), so it is read by the
// version it carries. Positions come from each version's pycore_debug_offsets.h (pycore_runtime.h
// in 3.13).
struct FieldPositions {
    int minor;
    std::size_t words;
    int interpreters_head, interp_next, interp_threads_head;
    int tstate_size, tstate_next, tstate_interp, tstate_current_frame, tstate_thread_id, tstate_native_thread_id;
    int iframe_size, iframe_previous, iframe_executable, iframe_instr_ptr, iframe_owner;
    int code_size, code_filename, code_name, code_qualname, code_linetable, code_firstlineno, code_adaptive;
    int bytes_size, bytes_data, unicode_state, unicode_length, unicode_ascii_size;
};

constexpr std::array<FieldPositions, 3> kPositions{{
    {13, 73, 5, 8, 9, 19, 21, 22, 23, 24, 25, 28, 29, 30, 31, 33, 34, 35, 36, 37, 38, 39, 43, 65, 66, 68, 69, 70},
    {14, 95, 5, 8, 9, 22, 24, 25, 26, 27, 28, 31, 32, 33, 34, 36, 39, 40, 41, 42, 43, 44, 48, 75, 76, 78, 79, 80},
    {15, 111, 5, 8, 9, 22, 24, 25, 26, 30, 31, 39, 40, 41, 42, 44, 47, 48, 49, 50, 51, 52, 56, 87, 88, 90, 91, 92},
}};

const FieldPositions* positions_for(const DebugOffsets& offsets) {
    if (offsets.major() != 3) return nullptr;
    for (const auto& positions : kPositions) {
        if (positions.minor == offsets.minor()) return &positions;
    }
    return nullptr;
}

struct Field {
    const char* name;
    std::int64_t PythonLayout::*member;
    int FieldPositions::*position;
    int FieldPositions::*within;  // the size of the struct the field belongs to, or nullptr
};

constexpr Field kFields[] = {
    {"runtime_interpreters_head", &PythonLayout::runtime_interpreters_head, &FieldPositions::interpreters_head,
     nullptr},
    {"interp_next", &PythonLayout::interp_next, &FieldPositions::interp_next, nullptr},
    {"interp_threads_head", &PythonLayout::interp_threads_head, &FieldPositions::interp_threads_head, nullptr},
    {"tstate_size", &PythonLayout::tstate_size, &FieldPositions::tstate_size, nullptr},
    {"tstate_next", &PythonLayout::tstate_next, &FieldPositions::tstate_next, &FieldPositions::tstate_size},
    {"tstate_interp", &PythonLayout::tstate_interp, &FieldPositions::tstate_interp, &FieldPositions::tstate_size},
    {"tstate_frame", &PythonLayout::tstate_frame, &FieldPositions::tstate_current_frame, &FieldPositions::tstate_size},
    {"tstate_thread_id", &PythonLayout::tstate_thread_id, &FieldPositions::tstate_thread_id,
     &FieldPositions::tstate_size},
    {"tstate_native_thread_id", &PythonLayout::tstate_native_thread_id, &FieldPositions::tstate_native_thread_id,
     &FieldPositions::tstate_size},
    {"iframe_size", &PythonLayout::iframe_size, &FieldPositions::iframe_size, nullptr},
    {"iframe_previous", &PythonLayout::iframe_previous, &FieldPositions::iframe_previous, &FieldPositions::iframe_size},
    {"iframe_code", &PythonLayout::iframe_code, &FieldPositions::iframe_executable, &FieldPositions::iframe_size},
    {"iframe_instr", &PythonLayout::iframe_instr, &FieldPositions::iframe_instr_ptr, &FieldPositions::iframe_size},
    {"iframe_owner", &PythonLayout::iframe_owner, &FieldPositions::iframe_owner, &FieldPositions::iframe_size},
    {"code_size", &PythonLayout::code_size, &FieldPositions::code_size, nullptr},
    {"code_filename", &PythonLayout::code_filename, &FieldPositions::code_filename, &FieldPositions::code_size},
    {"code_name", &PythonLayout::code_name, &FieldPositions::code_name, &FieldPositions::code_size},
    {"code_qualname", &PythonLayout::code_qualname, &FieldPositions::code_qualname, &FieldPositions::code_size},
    {"code_linetable", &PythonLayout::code_linetable, &FieldPositions::code_linetable, &FieldPositions::code_size},
    {"code_firstlineno", &PythonLayout::code_firstlineno, &FieldPositions::code_firstlineno,
     &FieldPositions::code_size},
    {"code_adaptive", &PythonLayout::code_adaptive, &FieldPositions::code_adaptive, &FieldPositions::code_size},
    {"bytes_size", &PythonLayout::bytes_size, &FieldPositions::bytes_size, nullptr},
    {"bytes_data", &PythonLayout::bytes_data, &FieldPositions::bytes_data, nullptr},
    {"unicode_state", &PythonLayout::unicode_state, &FieldPositions::unicode_state, nullptr},
    {"unicode_length", &PythonLayout::unicode_length, &FieldPositions::unicode_length, nullptr},
    {"unicode_ascii_data", &PythonLayout::unicode_ascii_data, &FieldPositions::unicode_ascii_size, nullptr},
};

// Every offset below its struct's size and every value small: otherwise the words were not what
// this version's shape says they are, and none of them is used.
bool plausible(const DebugOffsets& offsets, const FieldPositions& positions) {
    for (const auto& field : kFields) {
        std::uint64_t value = offsets.words[static_cast<std::size_t>(positions.*field.position)];
        if (value >= kMaxOffset) return false;
        if (field.within != nullptr && value >= offsets.words[static_cast<std::size_t>(positions.*field.within)]) {
            return false;
        }
    }
    return true;
}

}  // namespace

std::optional<DebugOffsets> parse_debug_offsets(std::span<const std::uint64_t> words) {
    if (words.size() < 3 || std::memcmp(words.data(), kCookie, sizeof(kCookie)) != 0) return std::nullopt;
    DebugOffsets offsets;
    offsets.version_hex = words[1];
    offsets.free_threaded = words[2] != 0;
    offsets.words.assign(words.begin(), words.end());
    return offsets;
}

std::optional<DebugOffsets> read_debug_offsets(attach::Memory& memory, std::uint64_t runtime_address) {
    std::vector<std::uint64_t> words(kMaxWords);
    if (runtime_address == 0 || !memory.read(runtime_address, words.data(), words.size() * sizeof(std::uint64_t))) {
        return std::nullopt;
    }
    return parse_debug_offsets(words);
}

LayoutCheck apply_debug_offsets(const DebugOffsets& offsets, PythonLayout& layout) {
    LayoutCheck check;
    const FieldPositions* positions = positions_for(offsets);
    if (positions == nullptr || offsets.words.size() < positions->words || !plausible(offsets, *positions)) {
        return check;
    }
    check.understood = true;
    for (const auto& field : kFields) {
        auto published = static_cast<std::int64_t>(offsets.words[static_cast<std::size_t>(positions->*field.position)]);
        std::int64_t& ours = layout.*field.member;
        if (ours != published) {
            check.differences.push_back(std::string(field.name) + ": table " + std::to_string(ours) + ", interpreter " +
                                        std::to_string(published));
            ours = published;
        }
    }
    return check;
}

}  // namespace pysample::sampler
