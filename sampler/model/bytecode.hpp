// CPython bytecode: each version's instruction set (generated from its headers by
// scripts/gen-opcodes) and the decoding of a code object's instructions, to tell which instruction
// a frame executes and show it as `dis` does.
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <optional>
#include <span>
#include <string>
#include <vector>

namespace pysample::sampler {

// What an instruction's argument means, as `dis` shows it.
enum class ArgKind : std::uint8_t {
    None,          // no argument, or one dis does not show
    Number,        // shown as the number itself
    Const,         // co_consts[arg]
    Name,          // co_names[arg]
    Local,         // a local variable: co_varnames[arg] (co_localsplusnames from 3.11)
    Free,          // a cell or free variable
    Compare,       // a comparison operator
    JumpForward,   // a relative jump forward
    JumpBackward,  // a relative jump backward
    JumpAbsolute,  // a jump to an offset
    BinaryOp,      // BINARY_OP's operator (3.11+)
    NameShift1,    // co_names[arg >> 1], the low bit a flag (LOAD_GLOBAL 3.11+, LOAD_ATTR 3.12+)
    NameShift2,    // co_names[arg >> 2] (LOAD_SUPER_ATTR)
    LocalPair,     // two locals, arg >> 4 and arg & 15 (LOAD_FAST_LOAD_FAST 3.13+)
    SmallInt,      // the argument is the value (LOAD_SMALL_INT 3.14+)
};

struct InstructionSet {
    int major = 0;
    int minor = 0;
    int wordcode = 1;       // every instruction a 16-bit code unit (3.6+); else 1 byte, 3 with an argument
    int jump_unit = 1;      // bytes a jump argument counts: 1 up to 3.9, 2 from 3.10
    int compare_shift = 0;  // COMPARE_OP's operator is arg >> compare_shift
    int compare_bool = 0;   // the bit of COMPARE_OP's argument that asks for a bool (3.13+)
    int null_first = 0;     // the NULL a LOAD_GLOBAL or LOAD_ATTR pushes is shown before the name (3.11, 3.12)
    int have_argument = 90;
    int extended_arg = -1;
    int extended_arg_quick = -1;             // 3.11
    int instrumented_line = -1;              // 3.12+: the original instruction is in the code's monitoring data
    int instrumented_instruction = -1;       // 3.12+: likewise
    int enter_executor = -1;                 // 3.13+: the original instruction is in the executor
    std::array<const char*, 256> names{};    // "" for a number no instruction has
    std::array<std::uint8_t, 256> base{};    // specialized and instrumented instructions to the one they stand for
    std::array<std::uint8_t, 256> caches{};  // inline cache code units after the instruction (3.11+)
    std::array<ArgKind, 256> kinds{};        // of the base instruction
    std::vector<const char*> compare_ops;
    std::vector<const char*> binary_ops;

    // The instruction's original stands elsewhere (monitoring data, an executor): it cannot be
    // decoded from the bytecode alone.
    bool hides_original(std::uint8_t op) const {
        return op == instrumented_line || op == instrumented_instruction || op == enter_executor;
    }
    bool is_extended_arg(std::uint8_t op) const { return op == extended_arg || op == extended_arg_quick; }
};

// The instruction set of a version; nullptr for a version the table does not hold.
const InstructionSet* instruction_set(int major, int minor);

struct Instruction {
    std::int32_t start = 0;   // byte offset of its first unit, EXTENDED_ARG prefixes included
    std::int32_t offset = 0;  // byte offset of the instruction itself: what dis shows
    std::int32_t end = 0;     // byte offset past it and its inline caches
    std::uint8_t opcode = 0;  // as found: maybe specialized or instrumented
    std::uint8_t base = 0;
    std::uint32_t arg = 0;  // with its EXTENDED_ARG prefixes folded in
};

// A code object's instructions, decoded from its start: only then are instruction boundaries known,
// since inline caches hold arbitrary data. Decoding stops at an instruction whose original is
// stored elsewhere (see hides_original()) that `original` cannot tell; `complete` then says the
// rest is unknown.
struct DecodedCode {
    std::vector<Instruction> instructions;
    bool complete = true;

    // The instruction whose units (prefixes and caches included) hold this byte offset; nullptr
    // when the offset is outside what was decoded.
    const Instruction* at(std::int64_t byte_offset) const;
};

// What an instruction that hides its original (hides_original()) stands for, at this code unit;
// nullopt when not known. INSTRUMENTED_LINE's original may be INSTRUMENTED_INSTRUCTION, asked
// for again.
using OriginalOpcode = std::function<std::optional<std::uint8_t>(std::uint8_t opcode, std::size_t unit)>;

DecodedCode decode_bytecode(const InstructionSet& set, std::span<const std::uint8_t> code,
                            const OriginalOpcode& original = {});

// Resolves an argument to text through the code object's tuples; nullopt when it cannot be read.
struct ArgumentNames {
    std::function<std::optional<std::string>(std::uint32_t)> constant;  // repr of co_consts[i]
    std::function<std::optional<std::string>(std::uint32_t)> name;      // co_names[i]
    std::function<std::optional<std::string>(std::uint32_t)> local;     // a local's name
    std::function<std::optional<std::string>(std::uint32_t)> free;      // a cell or free variable's name
};

// `LOAD_ATTR_INSTANCE_VALUE (LOAD_ATTR)` for a specialized instruction, `LOAD_ATTR` otherwise.
std::string instruction_name(const InstructionSet& set, const Instruction& instruction);
// The base instruction's name.
std::string base_name(const InstructionSet& set, const Instruction& instruction);
// The argument as dis shows it (`sqrt`, `NULL + math`, `to 24`, `<`, `+=`); empty without one.
std::string argument_text(const InstructionSet& set, const Instruction& instruction, const ArgumentNames& names);

}  // namespace pysample::sampler
