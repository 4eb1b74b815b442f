#include "symbolize/native_unwind.hpp"

#include <libunwind.h>
#include <spdlog/spdlog.h>

#include <cstring>
#include <map>
#include <optional>
#include <utility>

extern "C" int _Ux86_64_dwarf_search_unwind_table(unw_addr_space_t as, unw_word_t ip, unw_dyn_info_t* di,
                                                  unw_proc_info_t* pi, int need_unwind_info, void* arg);

namespace pysample::symbolize {

std::string_view describe(UnwindResult result) {
    switch (result) {
        case UnwindResult::Ok: return "ok";
        case UnwindResult::NoRegisters: return "registers unreadable";
        case UnwindResult::NoUnwindInfo: return "code without unwind information";
        case UnwindResult::StackRead: return "stack memory unreadable";
        case UnwindResult::TooDeep: return "native stack too deep or not moving";
        case UnwindResult::Failed: return "native unwinding failed";
    }
    return "unknown";
}

namespace {

constexpr std::size_t kMaxFrames = 2048;

// Where a module's .eh_frame_hdr binary-search table sits in the target.
struct EhTable {
    bool usable = false;
    std::uint64_t header = 0;  // runtime address of .eh_frame_hdr
    std::uint64_t table = 0;   // runtime address of its sorted (initial location, FDE) pairs
    std::uint64_t entries = 0;
};

// Size in bytes of a DW_EH_PE-encoded value (its low four bits), or nullopt for encodings a
// header does not use.
std::optional<std::size_t> encoded_size(std::uint8_t encoding) {
    switch (encoding & 0x0f) {
        case 0x00: return 8;  // absptr
        case 0x02:
        case 0x0a: return 2;
        case 0x03:
        case 0x0b: return 4;
        case 0x04:
        case 0x0c: return 8;
        default: return std::nullopt;
    }
}

std::uint64_t read_unsigned(const std::uint8_t* bytes, std::size_t size) {
    std::uint64_t value = 0;
    std::memcpy(&value, bytes, size);
    return value;
}

constexpr std::uint8_t kOmit = 0xff;
constexpr std::uint8_t kDatarelSdata4 = 0x3b;  // the only table encoding libunwind searches

EhTable find_eh_table(const Module& module) {
    EhTable result;
    if (!module.elf) return result;
    const auto* section = module.elf->section(".eh_frame_hdr");
    if (section == nullptr) return result;
    auto bytes = module.elf->section_data(*section);
    if (bytes.size() < 4 || bytes[0] != 1) return result;
    std::uint8_t frame_ptr_encoding = bytes[1];
    std::uint8_t count_encoding = bytes[2];
    std::uint8_t table_encoding = bytes[3];
    if (count_encoding == kOmit || table_encoding != kDatarelSdata4) return result;
    auto frame_ptr_size =
        frame_ptr_encoding == kOmit ? std::optional<std::size_t>(0) : encoded_size(frame_ptr_encoding);
    auto count_size = encoded_size(count_encoding);
    if (!frame_ptr_size || !count_size || 4 + *frame_ptr_size + *count_size > bytes.size()) return result;
    std::size_t table_offset = 4 + *frame_ptr_size + *count_size;
    result.entries = read_unsigned(bytes.data() + 4 + *frame_ptr_size, *count_size);
    if (result.entries == 0 || result.entries * 8 > bytes.size() - table_offset) return result;
    result.header = section->addr + module.bias;
    result.table = result.header + table_offset;
    result.usable = true;
    return result;
}

}  // namespace

struct NativeUnwinder::State {
    ModuleMap& modules;
    attach::Memory& memory;
    unw_addr_space_t space = nullptr;
    const attach::Registers* registers = nullptr;
    const StackCopy* stack = nullptr;
    std::map<std::pair<std::string, std::uint64_t>, EhTable> tables;
    std::uint64_t generation = 0;
    std::uint64_t live_reads = 0;
    bool read_failed = false;
    bool no_unwind_info = false;
    attach::Registers caller_of_leaf;

    State(ModuleMap& m, attach::Memory& mem) : modules(m), memory(mem) {}

    // Whether `address` is a return address into code with unwind tables: the bytes before it
    // are one of the call instruction forms (direct, or indirect through a register or memory).
    bool follows_call(std::uint64_t address) {
        const Module* module = modules.find(address);
        if (module == nullptr || !module->elf || !table_for(*module).usable || address < module->start + 7)
            return false;
        auto bytes = module->elf->bytes_at_vaddr(module->link_address(address) - 7, 7);
        if (bytes.size() != 7) return false;
        auto indirect_call_at = [&](std::size_t i) { return bytes[i] == 0xff && (bytes[i + 1] & 0x38) == 0x10; };
        return bytes[2] == 0xe8 || indirect_call_at(5) || indirect_call_at(4) || indirect_call_at(1) ||
               indirect_call_at(0);
    }

    // A trampoline without unwind tables (libffi's closure trampolines) has pushed at most a few
    // words when the thread stops in it: its caller resumes at the first of them that follows a
    // call instruction in code that has tables.
    bool skip_leaf_without_tables(const attach::Registers& leaf) {
        constexpr std::uint64_t kMaxWords = 4;
        for (std::uint64_t word = 0; word < kMaxWords; ++word) {
            std::uint64_t slot = leaf.sp() + 8 * word;
            if (!stack->contains(slot, 8)) return false;
            std::uint64_t return_address = 0;
            std::memcpy(&return_address, stack->bytes.data() + (slot - stack->start), 8);
            if (!follows_call(return_address)) continue;
            caller_of_leaf = leaf;
            caller_of_leaf.values[attach::Registers::kPc] = return_address;
            caller_of_leaf.values[attach::Registers::kSp] = slot + 8;
            return true;
        }
        return false;
    }

    const EhTable& table_for(const Module& module) {
        auto key = std::make_pair(module.path, module.start);
        auto it = tables.find(key);
        if (it == tables.end()) it = tables.emplace(key, find_eh_table(module)).first;
        return it->second;
    }

    // Unwind tables and code are read from the files' images; only writable memory and what the
    // copy lacks come from the live process.
    bool read_word(std::uint64_t address, unw_word_t& value) {
        if (stack->contains(address, sizeof(value))) {
            std::memcpy(&value, stack->bytes.data() + (address - stack->start), sizeof(value));
            return true;
        }
        if (const auto* module = modules.find(address); module != nullptr && module->elf) {
            const auto* mapping = modules.mapping(address);
            bool read_only = mapping != nullptr && mapping->perms.size() > 1 && mapping->perms[1] != 'w';
            if (read_only) {
                auto bytes = module->elf->bytes_at_vaddr(module->link_address(address), sizeof(value));
                if (bytes.size() == sizeof(value)) {
                    std::memcpy(&value, bytes.data(), sizeof(value));
                    return true;
                }
            }
        }
        ++live_reads;
        if (memory.read_value(address, value)) return true;
        spdlog::debug("native unwinding: cannot read {:#x} (stack copy {:#x}+{:#x})", address, stack->start,
                      stack->bytes.size());
        read_failed = true;
        return false;
    }
};

namespace {

using State = NativeUnwinder::State;

State& state_of(void* arg) { return *static_cast<State*>(arg); }

int find_proc_info(unw_addr_space_t space, unw_word_t ip, unw_proc_info_t* info, int need_unwind_info, void* arg) {
    State& state = state_of(arg);
    const Module* module = state.modules.find(ip);
    if (module == nullptr) {
        state.no_unwind_info = true;
        return -UNW_ENOINFO;
    }
    const EhTable& table = state.table_for(*module);
    if (!table.usable) {
        state.no_unwind_info = true;
        return -UNW_ENOINFO;
    }
    unw_dyn_info_t dyn{};
    dyn.format = UNW_INFO_FORMAT_REMOTE_TABLE;
    dyn.start_ip = module->start;
    dyn.end_ip = module->end;
    dyn.u.rti.segbase = table.header;
    dyn.u.rti.table_data = table.table;
    dyn.u.rti.table_len = table.entries * 8 / sizeof(unw_word_t);
    int result = _Ux86_64_dwarf_search_unwind_table(space, ip, &dyn, info, need_unwind_info, arg);
    if (result == -UNW_ENOINFO) state.no_unwind_info = true;
    return result;
}

// The unwind information found above is freed by libunwind itself.
void put_unwind_info(unw_addr_space_t, unw_proc_info_t*, void*) {}

int get_dyn_info_list_addr(unw_addr_space_t, unw_word_t*, void*) { return -UNW_ENOINFO; }

int access_mem(unw_addr_space_t, unw_word_t address, unw_word_t* value, int write, void* arg) {
    if (write != 0) return -UNW_EINVAL;
    return state_of(arg).read_word(address, *value) ? 0 : -UNW_EINVAL;
}

int access_reg(unw_addr_space_t, unw_regnum_t reg, unw_word_t* value, int write, void* arg) {
    if (write != 0) return -UNW_EREADONLYREG;
    if (reg < 0 || static_cast<std::size_t>(reg) >= attach::Registers::kCount) return -UNW_EBADREG;
    *value = state_of(arg).registers->values[static_cast<std::size_t>(reg)];
    return 0;
}

int access_fpreg(unw_addr_space_t, unw_regnum_t, unw_fpreg_t*, int, void*) { return -UNW_EBADREG; }

int resume(unw_addr_space_t, unw_cursor_t*, void*) { return -UNW_EINVAL; }

int get_proc_name(unw_addr_space_t, unw_word_t, char*, std::size_t, unw_word_t*, void*) { return -UNW_ENOINFO; }

unw_accessors_t accessors() {
    unw_accessors_t table{};
    table.find_proc_info = find_proc_info;
    table.put_unwind_info = put_unwind_info;
    table.get_dyn_info_list_addr = get_dyn_info_list_addr;
    table.access_mem = access_mem;
    table.access_reg = access_reg;
    table.access_fpreg = access_fpreg;
    table.resume = resume;
    table.get_proc_name = get_proc_name;
    return table;
}

}  // namespace

NativeUnwinder::NativeUnwinder(ModuleMap& modules, attach::Memory& memory)
    : state_(std::make_unique<State>(modules, memory)) {
    auto table = accessors();
    state_->space = unw_create_addr_space(&table, 0);
    if (state_->space == nullptr) throw std::runtime_error("libunwind could not create an address space");
    // Unwind rules are cached per address: one thread at a time uses this address space.
    unw_set_caching_policy(state_->space, UNW_CACHE_GLOBAL);
    state_->generation = modules.generation();
}

NativeUnwinder::~NativeUnwinder() {
    if (state_->space != nullptr) unw_destroy_addr_space(state_->space);
}

std::uint64_t NativeUnwinder::live_reads() const { return state_->live_reads; }

UnwindResult NativeUnwinder::unwind(const attach::Registers& registers, const StackCopy& stack,
                                    std::vector<std::uint64_t>& pcs) {
    pcs.clear();
    State& state = *state_;
    state.registers = &registers;
    state.stack = &stack;
    state.read_failed = false;
    state.no_unwind_info = false;
    if (state.generation != state.modules.generation()) {
        // A library was unloaded or replaced: cached rules may describe code that is gone.
        unw_flush_cache(state.space, 0, 0);
        state.tables.clear();
        state.generation = state.modules.generation();
    }

    unw_cursor_t cursor;
    if (unw_init_remote(&cursor, state.space, &state) < 0) return UnwindResult::Failed;
    unw_word_t previous_sp = 0;
    for (;;) {
        unw_word_t pc = 0;
        unw_word_t sp = 0;
        unw_get_reg(&cursor, UNW_REG_IP, &pc);
        unw_get_reg(&cursor, UNW_REG_SP, &sp);
        if (pc == 0) return pcs.empty() ? UnwindResult::Failed : UnwindResult::Ok;
        if (pcs.size() >= kMaxFrames || (!pcs.empty() && sp <= previous_sp && sp != 0)) return UnwindResult::TooDeep;
        pcs.push_back(pc);
        previous_sp = sp;
        state.no_unwind_info = false;
        int step = unw_step(&cursor);
        if (state.no_unwind_info && pcs.size() == 1 && state.skip_leaf_without_tables(registers)) {
            state.registers = &state.caller_of_leaf;
            state.no_unwind_info = false;
            if (unw_init_remote(&cursor, state.space, &state) < 0) return UnwindResult::Failed;
            continue;
        }
        // Without unwind information libunwind guesses the caller from the frame pointer, which
        // code built without one turns into skipped frames or an early end: such a stack is not
        // trusted.
        if (state.no_unwind_info) return UnwindResult::NoUnwindInfo;
        if (step == 0) return UnwindResult::Ok;
        if (step < 0) {
            if (state.read_failed) return UnwindResult::StackRead;
            return UnwindResult::Failed;
        }
    }
}

}  // namespace pysample::symbolize
