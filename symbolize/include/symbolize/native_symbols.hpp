// Function names and source lines for native program counters of a live process.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <utility>

#include "symbolize/modules.hpp"

namespace pysample::symbolize {

struct NativeFrameInfo {
    std::string function;             // demangled C++ name or C name; empty when no symbol covers the address
    std::string module;               // Module::name, e.g. "libc.so.6"; empty when the address is in no mapped file
    std::string module_path;          // Module::path
    std::uint64_t module_offset = 0;  // function start - Module::start when the function or its start is
                                      // known, else address - Module::start
    // No symbol names the function, but the unwind tables give its start: module_offset is it.
    bool unnamed_function = false;
    std::string source_file;  // from DWARF; code inlined into the function gives its call site; empty when unknown
    int line = 0;             // 0 when unknown
};

// Symbols come from .symtab (else .dynsym) of each module or of its separate debug file, found by
// build id or .gnu_debuglink under `debug_root`; source lines from DWARF through libdw. One
// thread at a time.
class NativeSymbolizer {
public:
    explicit NativeSymbolizer(ModuleMap& modules, std::string debug_root = "/usr/lib/debug");
    ~NativeSymbolizer();
    NativeSymbolizer(const NativeSymbolizer&) = delete;
    NativeSymbolizer& operator=(const NativeSymbolizer&) = delete;

    // `address` is a program counter; callers pass return addresses minus one. Cached per address;
    // the reference stays valid until trim(). Never throws.
    const NativeFrameInfo& lookup(std::uint64_t address);
    // Drops what belongs to unloaded libraries, and the whole address cache once it is large.
    void trim();

private:
    struct ModuleSymbols;
    using ModuleKey = std::pair<std::string, std::uint64_t>;  // path and start address

    NativeFrameInfo resolve(const Module& module, std::uint64_t address);
    ModuleSymbols& symbols_of(const Module& module);
    std::unique_ptr<ModuleSymbols> load_symbols(const Module& module);
    std::shared_ptr<const ElfFile> find_debug_file(const Module& module);
    std::shared_ptr<const ElfFile> open_debug_candidate(const std::string& path, const ElfFile& module_file);
    void forget_unloaded_modules();
    void log_once(const std::string& path, const std::string& what);

    ModuleMap& modules_;
    std::string debug_root_;
    std::uint64_t generation_;
    std::map<ModuleKey, std::unique_ptr<ModuleSymbols>> symbols_;
    std::unordered_map<std::uint64_t, NativeFrameInfo> cache_;
    std::unordered_set<std::string> logged_paths_;
    NativeFrameInfo unknown_;
};

}  // namespace pysample::symbolize
