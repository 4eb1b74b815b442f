#include "model/debug_offsets.hpp"

#include <algorithm>
#include <array>
#include <cstring>

namespace pysample::sampler {
namespace {

constexpr char kCookie[8] = {'x', 'd', 'e', 'b', 'u', 'g', 'p', 'y'};
constexpr std::size_t kMaxWords = 160;
constexpr std::uint64_t kMaxOffset = 1 << 16;

// Where each field pysample uses sits in the struct (in 64-bit words), per version; -1 where
// that version does not publish it. The struct grows between versions (3.14 and 3.15 insert fields
// in the middle), so it is read by the version it carries. Positions come from each version's
// pycore_debug_offsets.h (pycore_runtime.h in 3.13).
struct FieldPositions {
    int major, minor;
    std::size_t words;
    int interpreters_head, interp_size, interp_next, interp_threads_head, interp_imports_modules;
    int interp_ceval_gil, interp_gil_runtime_state, interp_gil_locked, interp_gil_holder;
    int tstate_size, tstate_next, tstate_interp, tstate_current_frame, tstate_thread_id, tstate_native_thread_id;
    int iframe_size, iframe_previous, iframe_executable, iframe_instr_ptr, iframe_localsplus, iframe_owner;
    int code_size, code_filename, code_name, code_qualname, code_linetable, code_firstlineno, code_localsplusnames,
        code_localspluskinds, code_adaptive;
    int object_type, type_name, tuple_items, tuple_size, set_used, float_value, long_tag, long_digits;
    int bytes_size, bytes_data, unicode_state, unicode_length, unicode_ascii_size;
};

// clang-format off
constexpr std::array<FieldPositions, 3> kPositions{{
    {.major = 3, .minor = 13, .words = 73,
     .interpreters_head = 5, .interp_size = 6, .interp_next = 8, .interp_threads_head = 9,
     .interp_imports_modules = 11,
     .interp_ceval_gil = 14, .interp_gil_runtime_state = 15, .interp_gil_locked = 17, .interp_gil_holder = 18,
     .tstate_size = 19, .tstate_next = 21, .tstate_interp = 22, .tstate_current_frame = 23, .tstate_thread_id = 24,
     .tstate_native_thread_id = 25,
     .iframe_size = 28, .iframe_previous = 29, .iframe_executable = 30, .iframe_instr_ptr = 31,
     .iframe_localsplus = 32, .iframe_owner = 33,
     .code_size = 34, .code_filename = 35, .code_name = 36, .code_qualname = 37, .code_linetable = 38,
     .code_firstlineno = 39, .code_localsplusnames = 41, .code_localspluskinds = 42, .code_adaptive = 43,
     .object_type = 45, .type_name = 47, .tuple_items = 51, .tuple_size = 52, .set_used = -1, .float_value = 60,
     .long_tag = 62, .long_digits = 63,
     .bytes_size = 65, .bytes_data = 66, .unicode_state = 68, .unicode_length = 69, .unicode_ascii_size = 70},
    {.major = 3, .minor = 14, .words = 95,
     .interpreters_head = 5, .interp_size = 6, .interp_next = 8, .interp_threads_head = 9,
     .interp_imports_modules = 12,
     .interp_ceval_gil = 15, .interp_gil_runtime_state = 16, .interp_gil_locked = 18, .interp_gil_holder = 19,
     .tstate_size = 22, .tstate_next = 24, .tstate_interp = 25, .tstate_current_frame = 26, .tstate_thread_id = 27,
     .tstate_native_thread_id = 28,
     .iframe_size = 31, .iframe_previous = 32, .iframe_executable = 33, .iframe_instr_ptr = 34,
     .iframe_localsplus = 35, .iframe_owner = 36,
     .code_size = 39, .code_filename = 40, .code_name = 41, .code_qualname = 42, .code_linetable = 43,
     .code_firstlineno = 44, .code_localsplusnames = 46, .code_localspluskinds = 47, .code_adaptive = 48,
     .object_type = 51, .type_name = 53, .tuple_items = 57, .tuple_size = 58, .set_used = 63, .float_value = 70,
     .long_tag = 72, .long_digits = 73,
     .bytes_size = 75, .bytes_data = 76, .unicode_state = 78, .unicode_length = 79, .unicode_ascii_size = 80},
    {.major = 3, .minor = 15, .words = 111,
     .interpreters_head = 5, .interp_size = 6, .interp_next = 8, .interp_threads_head = 9,
     .interp_imports_modules = 12,
     .interp_ceval_gil = 15, .interp_gil_runtime_state = 16, .interp_gil_locked = 18, .interp_gil_holder = 19,
     .tstate_size = 22, .tstate_next = 24, .tstate_interp = 25, .tstate_current_frame = 26, .tstate_thread_id = 30,
     .tstate_native_thread_id = 31,
     .iframe_size = 39, .iframe_previous = 40, .iframe_executable = 41, .iframe_instr_ptr = 42,
     .iframe_localsplus = 43, .iframe_owner = 44,
     .code_size = 47, .code_filename = 48, .code_name = 49, .code_qualname = 50, .code_linetable = 51,
     .code_firstlineno = 52, .code_localsplusnames = 54, .code_localspluskinds = 55, .code_adaptive = 56,
     .object_type = 59, .type_name = 61, .tuple_items = 69, .tuple_size = 70, .set_used = 75, .float_value = 82,
     .long_tag = 84, .long_digits = 85,
     .bytes_size = 87, .bytes_data = 88, .unicode_state = 90, .unicode_length = 91, .unicode_ascii_size = 92},
}};
// clang-format on

const FieldPositions* positions_for(const DebugOffsets& offsets) {
    for (const auto& positions : kPositions) {
        if (positions.major == offsets.major() && positions.minor == offsets.minor()) return &positions;
    }
    return nullptr;
}

// The fields are checked and taken in groups: the stack walk's fields are needed for anything to
// work, the others only by `dump --locals` and `--gil`.
enum class Group { Stacks, Gil, Values };

struct Field {
    const char* name;
    std::int64_t PythonLayout::*member;
    int FieldPositions::*position;
    Group group = Group::Stacks;
    int FieldPositions::*within = nullptr;  // the size of the struct the field belongs to
    // A published offset inside an enclosing struct, from which this one's start is subtracted:
    // 3.13+ publish the GIL's fields as offsets into the interpreter that embeds it.
    int FieldPositions::*relative_to = nullptr;
};

constexpr Field kFields[] = {
    {"runtime_interpreters_head", &PythonLayout::runtime_interpreters_head, &FieldPositions::interpreters_head},
    {"interp_next", &PythonLayout::interp_next, &FieldPositions::interp_next},
    {"interp_threads_head", &PythonLayout::interp_threads_head, &FieldPositions::interp_threads_head},
    {"tstate_size", &PythonLayout::tstate_size, &FieldPositions::tstate_size},
    {"tstate_next", &PythonLayout::tstate_next, &FieldPositions::tstate_next, Group::Stacks,
     &FieldPositions::tstate_size},
    {"tstate_interp", &PythonLayout::tstate_interp, &FieldPositions::tstate_interp, Group::Stacks,
     &FieldPositions::tstate_size},
    {"tstate_frame", &PythonLayout::tstate_frame, &FieldPositions::tstate_current_frame, Group::Stacks,
     &FieldPositions::tstate_size},
    {"tstate_thread_id", &PythonLayout::tstate_thread_id, &FieldPositions::tstate_thread_id, Group::Stacks,
     &FieldPositions::tstate_size},
    {"tstate_native_thread_id", &PythonLayout::tstate_native_thread_id, &FieldPositions::tstate_native_thread_id,
     Group::Stacks, &FieldPositions::tstate_size},
    {"iframe_size", &PythonLayout::iframe_size, &FieldPositions::iframe_size},
    {"iframe_previous", &PythonLayout::iframe_previous, &FieldPositions::iframe_previous, Group::Stacks,
     &FieldPositions::iframe_size},
    {"iframe_code", &PythonLayout::iframe_code, &FieldPositions::iframe_executable, Group::Stacks,
     &FieldPositions::iframe_size},
    {"iframe_instr", &PythonLayout::iframe_instr, &FieldPositions::iframe_instr_ptr, Group::Stacks,
     &FieldPositions::iframe_size},
    {"iframe_owner", &PythonLayout::iframe_owner, &FieldPositions::iframe_owner, Group::Stacks,
     &FieldPositions::iframe_size},
    {"code_size", &PythonLayout::code_size, &FieldPositions::code_size},
    {"code_filename", &PythonLayout::code_filename, &FieldPositions::code_filename, Group::Stacks,
     &FieldPositions::code_size},
    {"code_name", &PythonLayout::code_name, &FieldPositions::code_name, Group::Stacks, &FieldPositions::code_size},
    {"code_qualname", &PythonLayout::code_qualname, &FieldPositions::code_qualname, Group::Stacks,
     &FieldPositions::code_size},
    {"code_linetable", &PythonLayout::code_linetable, &FieldPositions::code_linetable, Group::Stacks,
     &FieldPositions::code_size},
    {"code_firstlineno", &PythonLayout::code_firstlineno, &FieldPositions::code_firstlineno, Group::Stacks,
     &FieldPositions::code_size},
    {"code_adaptive", &PythonLayout::code_adaptive, &FieldPositions::code_adaptive, Group::Stacks,
     &FieldPositions::code_size},
    {"bytes_size", &PythonLayout::bytes_size, &FieldPositions::bytes_size},
    {"bytes_data", &PythonLayout::bytes_data, &FieldPositions::bytes_data},
    {"unicode_state", &PythonLayout::unicode_state, &FieldPositions::unicode_state},
    {"unicode_length", &PythonLayout::unicode_length, &FieldPositions::unicode_length},
    {"unicode_ascii_data", &PythonLayout::unicode_ascii_data, &FieldPositions::unicode_ascii_size},

    {"interp_gil", &PythonLayout::interp_gil, &FieldPositions::interp_ceval_gil, Group::Gil},
    {"gil_locked", &PythonLayout::gil_locked, &FieldPositions::interp_gil_locked, Group::Gil, nullptr,
     &FieldPositions::interp_gil_runtime_state},
    {"gil_last_holder", &PythonLayout::gil_last_holder, &FieldPositions::interp_gil_holder, Group::Gil, nullptr,
     &FieldPositions::interp_gil_runtime_state},

    {"iframe_localsplus", &PythonLayout::iframe_localsplus, &FieldPositions::iframe_localsplus, Group::Values,
     &FieldPositions::iframe_size},
    {"code_localsplusnames", &PythonLayout::code_localsplusnames, &FieldPositions::code_localsplusnames, Group::Values,
     &FieldPositions::code_size},
    {"code_localspluskinds", &PythonLayout::code_localspluskinds, &FieldPositions::code_localspluskinds, Group::Values,
     &FieldPositions::code_size},
    {"interp_modules", &PythonLayout::interp_modules, &FieldPositions::interp_imports_modules, Group::Values,
     &FieldPositions::interp_size},
    {"object_type", &PythonLayout::object_type, &FieldPositions::object_type, Group::Values},
    {"type_name", &PythonLayout::type_name, &FieldPositions::type_name, Group::Values},
    {"tuple_items", &PythonLayout::tuple_items, &FieldPositions::tuple_items, Group::Values},
    {"var_size", &PythonLayout::var_size, &FieldPositions::tuple_size, Group::Values},
    {"set_used", &PythonLayout::set_used, &FieldPositions::set_used, Group::Values},
    {"float_value", &PythonLayout::float_value, &FieldPositions::float_value, Group::Values},
    {"long_size", &PythonLayout::long_size, &FieldPositions::long_tag, Group::Values},
    {"long_digits", &PythonLayout::long_digits, &FieldPositions::long_digits, Group::Values},
};

std::uint64_t word(const DebugOffsets& offsets, int position) {
    return offsets.words[static_cast<std::size_t>(position)];
}

bool published(const FieldPositions& positions, const Field& field) { return positions.*field.position >= 0; }

// The field's offset as the interpreter publishes it; nullopt when it is not plausible: beyond its
// struct's size, not inside the struct it is relative to, or large. Offsets of the optional groups
// are never 0 (each follows at least an object header), which also rejects words left empty.
std::optional<std::int64_t> published_value(const DebugOffsets& offsets, const FieldPositions& positions,
                                            const Field& field) {
    std::uint64_t value = word(offsets, positions.*field.position);
    if (field.relative_to != nullptr) {
        std::uint64_t base = word(offsets, positions.*field.relative_to);
        if (value <= base) return std::nullopt;
        value -= base;
    }
    if (value >= kMaxOffset) return std::nullopt;
    if (field.within != nullptr && value >= word(offsets, positions.*field.within)) return std::nullopt;
    if (field.group != Group::Stacks && value == 0) return std::nullopt;
    return static_cast<std::int64_t>(value);
}

// Every field of the group plausible: otherwise the words were not what this version's shape says
// they are, and none of the group's is used.
bool plausible(const DebugOffsets& offsets, const FieldPositions& positions, Group group) {
    for (const auto& field : kFields) {
        if (field.group == group && published(positions, field) && !published_value(offsets, positions, field)) {
            return false;
        }
    }
    return true;
}

const char* group_name(Group group) {
    switch (group) {
        case Group::Stacks: return "stacks";
        case Group::Gil: return "the GIL";
        case Group::Values: return "object values";
    }
    return "?";
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
    if (positions == nullptr || offsets.words.size() < positions->words ||
        !plausible(offsets, *positions, Group::Stacks)) {
        return check;
    }
    check.understood = true;
    std::vector<Group> ignored;
    for (Group group : {Group::Gil, Group::Values}) {
        if (plausible(offsets, *positions, group)) continue;
        ignored.push_back(group);
        check.ignored.push_back(group_name(group));
    }
    for (const auto& field : kFields) {
        if (!published(*positions, field) || std::find(ignored.begin(), ignored.end(), field.group) != ignored.end()) {
            continue;
        }
        auto value = published_value(offsets, *positions, field);
        if (!value) continue;
        std::int64_t& ours = layout.*field.member;
        if (ours != *value) {
            check.differences.push_back(std::string(field.name) + ": table " + std::to_string(ours) + ", interpreter " +
                                        std::to_string(*value));
            ours = *value;
        }
    }
    return check;
}

}  // namespace pysample::sampler
