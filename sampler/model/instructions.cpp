#include "model/instructions.hpp"

namespace pysample::sampler {
namespace {

constexpr std::size_t kMaxTupleItems = 1 << 16;
constexpr std::size_t kMaxNameChars = 200;

std::uint64_t field_address(std::uint64_t object, std::int64_t offset) {
    return object + static_cast<std::uint64_t>(offset);
}

}  // namespace

std::unique_ptr<InstructionReader> InstructionReader::create(attach::Memory& memory, const PythonProcess& process) {
    const InstructionSet* set = sampler::instruction_set(process.version().major, process.version().minor);
    if (set == nullptr) return nullptr;
    return std::make_unique<InstructionReader>(memory, process, *set);
}

InstructionReader::InstructionReader(attach::Memory& memory, const PythonProcess& process, const InstructionSet& set)
    : memory_(memory),
      layout_(process.layout()),
      set_(set),
      objects_(memory, process.layout(), process.code_layout(), 0),
      values_(memory, process) {}

const ExecutedInstruction* InstructionReader::at(const symbolize::CodeInfo& code, std::int64_t byte_offset) {
    if (byte_offset < 0) return nullptr;
    Bytecode* entry = bytecode(code);
    const Instruction* instruction = entry == nullptr ? nullptr : entry->decoded.at(byte_offset);
    if (instruction == nullptr) {
        ++unknown_;
        return nullptr;
    }
    auto it = entry->described.find(instruction->start);
    if (it == entry->described.end() || it->second.name != instruction_name(set_, *instruction)) {
        it = entry->described.insert_or_assign(instruction->start, describe(code, *entry, *instruction)).first;
    }
    return &it->second;
}

// The code's bytecode as last read: once for co_code (immutable, up to 3.10), again after
// kRereadAfter for 3.11+'s live copy, which specialization rewrites in place.
InstructionReader::Bytecode* InstructionReader::bytecode(const symbolize::CodeInfo& code) {
    auto now = std::chrono::steady_clock::now();
    auto [it, added] = codes_.try_emplace(code.id);
    Bytecode& entry = it->second;
    bool live = layout_.code_adaptive >= 0;
    if (!added && entry.fingerprint == code.fingerprint && (!live || now - entry.read_at < kRereadAfter)) {
        return entry.bytes.empty() ? nullptr : &entry;
    }
    if (added || entry.fingerprint != code.fingerprint) entry = Bytecode{};
    entry.fingerprint = code.fingerprint;
    entry.read_at = now;
    std::vector<std::uint8_t> bytes;
    if (!read_bytecode(code, bytes)) return entry.bytes.empty() ? nullptr : &entry;
    if (bytes != entry.bytes) {
        entry.bytes = std::move(bytes);
        Monitoring monitoring;
        entry.decoded = decode_bytecode(set_, entry.bytes, [&](std::uint8_t opcode, std::size_t unit) {
            if (!monitoring.read) read_monitoring(code, entry.bytes.size() / 2, monitoring);
            return original_opcode(monitoring, opcode, unit);
        });
    }
    return &entry;
}

void InstructionReader::read_monitoring(const symbolize::CodeInfo& code, std::size_t units, Monitoring& out) {
    out.read = true;
    auto monitoring = objects_.pointer_field(code.address, layout_.code_monitoring);
    if (!monitoring || *monitoring == 0) return;
    if (auto lines = objects_.pointer_field(*monitoring, layout_.monitoring_lines); lines && *lines != 0) {
        std::uint64_t data = *lines;
        if (layout_.line_entry_size > 0) {
            out.stride = static_cast<std::size_t>(layout_.line_entry_size);
            out.opcode_at = static_cast<std::size_t>(layout_.line_entry_opcode);
        } else {
            std::uint8_t stride = 0;
            if (!memory_.read_value(field_address(data, layout_.line_entry_size_field), stride)) stride = 0;
            out.stride = stride;
            data = field_address(data, layout_.line_entry_opcode);
        }
        out.lines.resize(out.stride * units);
        if (out.stride == 0 || !memory_.read(data, out.lines.data(), out.lines.size())) out.lines.clear();
    }
    if (auto opcodes = objects_.pointer_field(*monitoring, layout_.monitoring_instruction_opcodes);
        opcodes && *opcodes != 0) {
        out.instruction_opcodes.resize(units);
        if (!memory_.read(*opcodes, out.instruction_opcodes.data(), units)) out.instruction_opcodes.clear();
    }
}

std::optional<std::uint8_t> InstructionReader::original_opcode(const Monitoring& monitoring, std::uint8_t opcode,
                                                               std::size_t unit) const {
    if (opcode == set_.instrumented_line && (unit + 1) * monitoring.stride <= monitoring.lines.size()) {
        return monitoring.lines[unit * monitoring.stride + monitoring.opcode_at];
    }
    if (opcode == set_.instrumented_instruction && unit < monitoring.instruction_opcodes.size()) {
        return monitoring.instruction_opcodes[unit];
    }
    return std::nullopt;  // ENTER_EXECUTOR: the original is in a JIT executor, not read
}

bool InstructionReader::read_bytecode(const symbolize::CodeInfo& code, std::vector<std::uint8_t>& out) {
    if (layout_.code_adaptive >= 0) {
        if (code.code_bytes <= 0 || code.code_bytes > kMaxBytecode) return false;
        out.resize(static_cast<std::size_t>(code.code_bytes));
        return memory_.read(field_address(code.address, layout_.code_adaptive), out.data(), out.size());
    }
    auto object = objects_.pointer_field(code.address, layout_.code_bytecode);
    if (!object) return false;
    auto bytes = objects_.bytes_value(*object, static_cast<std::size_t>(kMaxBytecode));
    if (!bytes || bytes->data.size() != bytes->size) return false;
    out = std::move(bytes->data);
    return true;
}

void InstructionReader::read_tuples(const symbolize::CodeInfo& code, Bytecode& entry) {
    entry.tuples_read = true;
    auto items = [&](std::int64_t offset, std::vector<std::uint64_t>& out) {
        auto tuple = objects_.pointer_field(code.address, offset);
        if (!tuple || !objects_.sequence_items(*tuple, out, kMaxTupleItems)) out.clear();
    };
    items(layout_.code_consts, entry.consts);
    items(layout_.code_names, entry.names);
    if (layout_.code_localsplusnames >= 0) {
        items(layout_.code_localsplusnames, entry.locals);
        entry.free = entry.locals;
        return;
    }
    items(layout_.code_varnames, entry.locals);
    std::vector<std::uint64_t> cells;
    items(layout_.code_cellvars, cells);
    items(layout_.code_freevars, entry.free);
    entry.free.insert(entry.free.begin(), cells.begin(), cells.end());
}

std::optional<std::string> InstructionReader::item_text(const std::vector<std::uint64_t>& items, std::uint32_t index,
                                                        bool repr) {
    if (index >= items.size()) return std::nullopt;
    if (repr) return values_.format(items[index]).repr;
    return objects_.str_value(items[index], kMaxNameChars);
}

ExecutedInstruction InstructionReader::describe(const symbolize::CodeInfo& code, Bytecode& entry,
                                                const Instruction& instruction) {
    if (!entry.tuples_read) read_tuples(code, entry);
    ArgumentNames names{
        [&](std::uint32_t i) { return item_text(entry.consts, i, true); },
        [&](std::uint32_t i) { return item_text(entry.names, i, false); },
        [&](std::uint32_t i) { return item_text(entry.locals, i, false); },
        [&](std::uint32_t i) { return item_text(entry.free, i, false); },
    };
    ExecutedInstruction out;
    out.offset = instruction.offset;
    out.name = instruction_name(set_, instruction);
    out.base = base_name(set_, instruction);
    out.argument = argument_text(set_, instruction, names);
    if (code.format == symbolize::LineTableFormat::LocationTable311) {
        out.location = symbolize::location_for_offset(code.linetable, code.firstlineno, instruction.offset);
    }
    return out;
}

}  // namespace pysample::sampler
