// The instruction a Python frame executes, read from the target's bytecode and named as `dis`
// names it, with the argument's constant or name read from the code object's tuples.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "attach/memory.hpp"
#include "model/bytecode.hpp"
#include "model/locals.hpp"
#include "model/pydict.hpp"
#include "model/python_process.hpp"
#include "symbolize/linetable.hpp"
#include "symbolize/pycode.hpp"

namespace pysample::sampler {

struct ExecutedInstruction {
    std::int32_t offset = -1;            // dis's offset: the instruction's own, after any EXTENDED_ARG
    std::string name;                    // "LOAD_ATTR_INSTANCE_VALUE (LOAD_ATTR)" when specialized
    std::string base;                    // "LOAD_ATTR"
    std::string argument;                // as dis shows it: "sqrt", "NULL + math", "to 24"; empty without one
    symbolize::SourceLocation location;  // 3.11+: the expression's lines and columns
};

class InstructionReader {
public:
    // The live bytecode of 3.11+ changes as the interpreter specializes it: a code object's is
    // read again when older than this.
    static constexpr std::chrono::milliseconds kRereadAfter{1000};
    static constexpr std::int64_t kMaxBytecode = std::int64_t{1} << 22;

    // nullptr from create() when the version's instruction set is not known.
    static std::unique_ptr<InstructionReader> create(attach::Memory& memory, const PythonProcess& process);
    InstructionReader(attach::Memory& memory, const PythonProcess& process, const InstructionSet& set);

    // The instruction at `byte_offset` of the code (the frame's PyFrame::offset); nullptr before
    // the frame starts (a negative offset), or when the bytecode cannot be read or decoded up to it
    // (counted in unknown()). Valid until the next call.
    const ExecutedInstruction* at(const symbolize::CodeInfo& code, std::int64_t byte_offset);
    const InstructionSet& instruction_set() const { return set_; }
    std::uint64_t unknown() const { return unknown_; }

private:
    struct Bytecode {
        std::uint64_t fingerprint = 0;
        std::vector<std::uint8_t> bytes;
        DecodedCode decoded;
        std::chrono::steady_clock::time_point read_at{};
        std::unordered_map<std::int32_t, ExecutedInstruction> described;  // by the instruction's start
        std::vector<std::uint64_t> consts, names, locals, free;           // tuple items, read when needed
        bool tuples_read = false;
    };
    Bytecode* bytecode(const symbolize::CodeInfo& code);
    bool read_bytecode(const symbolize::CodeInfo& code, std::vector<std::uint8_t>& out);
    // What INSTRUMENTED_LINE and INSTRUMENTED_INSTRUCTION stand for, from the code's monitoring
    // data (3.12+), read when first asked for.
    struct Monitoring {
        bool read = false;
        std::vector<std::uint8_t> lines;  // one entry of `stride` bytes per code unit
        std::size_t stride = 0;
        std::size_t opcode_at = 0;  // the original opcode's byte in an entry
        std::vector<std::uint8_t> instruction_opcodes;
    };
    void read_monitoring(const symbolize::CodeInfo& code, std::size_t units, Monitoring& out);
    std::optional<std::uint8_t> original_opcode(const Monitoring& monitoring, std::uint8_t opcode,
                                                std::size_t unit) const;
    void read_tuples(const symbolize::CodeInfo& code, Bytecode& entry);
    ExecutedInstruction describe(const symbolize::CodeInfo& code, Bytecode& entry, const Instruction& instruction);
    std::optional<std::string> item_text(const std::vector<std::uint64_t>& items, std::uint32_t index, bool repr);

    attach::Memory& memory_;
    const PythonLayout& layout_;
    const InstructionSet& set_;
    ObjectReader objects_;
    ValueFormatter values_;
    std::unordered_map<std::uint32_t, Bytecode> codes_;  // by CodeInfo::id
    std::uint64_t unknown_ = 0;
};

}  // namespace pysample::sampler
