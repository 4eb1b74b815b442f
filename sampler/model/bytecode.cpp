#include "model/bytecode.hpp"

#include <algorithm>

namespace pysample::sampler {
namespace {

const std::vector<InstructionSet>& instruction_sets() {
    static const std::vector<InstructionSet> sets = {
#include "model/opcodes_generated.inc"
    };
    return sets;
}

struct Reader {
    std::span<const std::uint8_t> code;
    const OriginalOpcode& original;
    std::size_t at = 0;
    bool hidden = false;  // met an instruction whose original is not known

    bool done() const { return at >= code.size(); }
    std::uint8_t byte(std::size_t i) const { return i < code.size() ? code[i] : 0; }
};

// The opcode at a code unit, with what monitoring put in its place undone (an EXTENDED_ARG prefix
// may be behind INSTRUMENTED_LINE too).
std::optional<std::uint8_t> unit_opcode(const InstructionSet& set, const Reader& reader) {
    std::uint8_t op = reader.code[reader.at];
    for (int depth = 0; set.hides_original(op); ++depth) {
        auto original = reader.original && depth < 2 ? reader.original(op, reader.at / 2) : std::nullopt;
        if (!original) return std::nullopt;
        op = *original;
    }
    return op;
}

// Reads one instruction at reader.at (wordcode: opcode byte, argument byte) with its prefixes.
bool read_wordcode(const InstructionSet& set, Reader& reader, Instruction& out) {
    out.start = static_cast<std::int32_t>(reader.at);
    std::uint32_t arg = 0;
    for (;;) {
        if (reader.at + 2 > reader.code.size()) return false;
        auto unit = unit_opcode(set, reader);
        if (!unit) {
            reader.hidden = true;
            return false;
        }
        std::uint8_t op = *unit;
        arg = (arg << 8) | reader.code[reader.at + 1];
        if (!set.is_extended_arg(op)) {
            out.opcode = op;
            break;
        }
        reader.at += 2;
    }
    out.offset = static_cast<std::int32_t>(reader.at);
    out.base = set.base[out.opcode];
    out.arg = arg;
    reader.at += 2 + 2 * static_cast<std::size_t>(set.caches[out.opcode]);
    out.end = static_cast<std::int32_t>(std::min(reader.at, reader.code.size()));
    return true;
}

// 2.7: a byte, followed by a 16-bit argument from HAVE_ARGUMENT on; EXTENDED_ARG gives the
// next instruction's argument its high 16 bits.
bool read_bytecode27(const InstructionSet& set, Reader& reader, Instruction& out) {
    out.start = static_cast<std::int32_t>(reader.at);
    std::uint32_t arg = 0;
    for (;;) {
        if (reader.done()) return false;
        std::uint8_t op = reader.code[reader.at];
        bool has_arg = op >= set.have_argument;
        if (has_arg && reader.at + 3 > reader.code.size()) return false;
        std::uint32_t low = has_arg ? (reader.byte(reader.at + 1) | (reader.byte(reader.at + 2) << 8)) : 0;
        arg = (arg << 16) | low;
        if (!set.is_extended_arg(op)) {
            out.opcode = op;
            out.offset = static_cast<std::int32_t>(reader.at);
            reader.at += has_arg ? 3 : 1;
            break;
        }
        reader.at += 3;
    }
    out.base = set.base[out.opcode];
    out.arg = arg;
    out.end = static_cast<std::int32_t>(reader.at);
    return true;
}

std::string or_number(const std::optional<std::string>& text, std::uint32_t index) {
    return text ? *text : "<" + std::to_string(index) + ">";
}

std::string lookup(const std::function<std::optional<std::string>(std::uint32_t)>& resolve, std::uint32_t index) {
    return or_number(resolve ? resolve(index) : std::nullopt, index);
}

std::string with_null(const InstructionSet& set, const std::string& name, const char* null) {
    return set.null_first ? std::string(null) + " + " + name : name + " + " + null;
}

std::string jump_target(const InstructionSet& set, const Instruction& instruction, bool forward) {
    std::int64_t distance = static_cast<std::int64_t>(instruction.arg) * set.jump_unit;
    std::int64_t target = forward ? instruction.end + distance : instruction.end - distance;
    return "to " + std::to_string(target);
}

std::string compare_text(const InstructionSet& set, std::uint32_t arg) {
    std::uint32_t index = arg >> set.compare_shift;
    std::string op = index < set.compare_ops.size() ? set.compare_ops[index] : std::to_string(index);
    return set.compare_bool != 0 && (arg & static_cast<std::uint32_t>(set.compare_bool)) ? "bool(" + op + ")" : op;
}

}  // namespace

const InstructionSet* instruction_set(int major, int minor) {
    for (const auto& set : instruction_sets()) {
        if (set.major == major && set.minor == minor) return &set;
    }
    return nullptr;
}

const Instruction* DecodedCode::at(std::int64_t byte_offset) const {
    auto after = std::upper_bound(instructions.begin(), instructions.end(), byte_offset,
                                  [](std::int64_t offset, const Instruction& i) { return offset < i.start; });
    if (after == instructions.begin()) return nullptr;
    const Instruction& candidate = *(after - 1);
    return byte_offset < candidate.end ? &candidate : nullptr;
}

DecodedCode decode_bytecode(const InstructionSet& set, std::span<const std::uint8_t> code,
                            const OriginalOpcode& original) {
    DecodedCode decoded;
    Reader reader{code, original};
    while (!reader.done()) {
        Instruction instruction;
        bool read = set.wordcode ? read_wordcode(set, reader, instruction) : read_bytecode27(set, reader, instruction);
        if (!read) {
            decoded.complete = !reader.hidden;
            break;
        }
        if (set.names[instruction.opcode][0] == '\0') {
            decoded.complete = false;
            break;
        }
        decoded.instructions.push_back(instruction);
    }
    return decoded;
}

std::string base_name(const InstructionSet& set, const Instruction& instruction) { return set.names[instruction.base]; }

std::string instruction_name(const InstructionSet& set, const Instruction& instruction) {
    std::string name = set.names[instruction.opcode];
    if (instruction.base == instruction.opcode) return name;
    return name + " (" + set.names[instruction.base] + ")";
}

std::string argument_text(const InstructionSet& set, const Instruction& instruction, const ArgumentNames& names) {
    std::uint32_t arg = instruction.arg;
    switch (set.kinds[instruction.base]) {
        case ArgKind::None: return {};
        case ArgKind::Number:
        case ArgKind::SmallInt: return std::to_string(arg);
        case ArgKind::Const: return lookup(names.constant, arg);
        case ArgKind::Name: return lookup(names.name, arg);
        case ArgKind::NameShift1: {
            std::string name = lookup(names.name, arg >> 1);
            if ((arg & 1) == 0) return name;
            return with_null(set, name,
                             std::string_view(set.names[instruction.base]) == "LOAD_GLOBAL" ? "NULL" : "NULL|self");
        }
        case ArgKind::NameShift2: return lookup(names.name, arg >> 2);
        case ArgKind::Local: return lookup(names.local, arg);
        case ArgKind::LocalPair: return lookup(names.local, arg >> 4) + ", " + lookup(names.local, arg & 15);
        case ArgKind::Free: return lookup(names.free, arg);
        case ArgKind::Compare: return compare_text(set, arg);
        case ArgKind::JumpForward: return jump_target(set, instruction, true);
        case ArgKind::JumpBackward: return jump_target(set, instruction, false);
        case ArgKind::JumpAbsolute: return "to " + std::to_string(static_cast<std::uint64_t>(arg) * set.jump_unit);
        case ArgKind::BinaryOp: return arg < set.binary_ops.size() ? set.binary_ops[arg] : std::to_string(arg);
    }
    return {};
}

}  // namespace pysample::sampler
