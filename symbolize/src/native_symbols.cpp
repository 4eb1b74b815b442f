#include "symbolize/native_symbols.hpp"

#include <cxxabi.h>
#include <elf.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <string_view>
#include <vector>

#include "attach/threads.hpp"
#include "dwarf_lines.hpp"

namespace pysample::symbolize {
namespace {

constexpr std::size_t kMaxCachedAddresses = 200'000;
// How many preceding symbols may be checked for one that encloses smaller ones.
constexpr std::size_t kMaxNestingLookback = 8;

struct FunctionSymbol {
    std::uint64_t start = 0;
    std::uint64_t end = 0;  // start + size; for a symbol without size, the end of its section
    bool sized = false;
    bool old_version = false;  // `name@VERSION` kept for old binaries, unlike the default `name@@VERSION`
    unsigned char binding = STB_LOCAL;
    std::string_view name;  // into the string table of the mapped ElfFile, without any version
};

int binding_rank(unsigned char binding) {
    switch (binding) {
        case STB_GLOBAL: return 0;
        case STB_WEAK: return 1;
        default: return 2;
    }
}

std::size_t leading_underscores(std::string_view name) { return std::min(name.find_first_not_of('_'), name.size()); }

// Of several names for one address, the one a person would call it: `qsort` rather than the
// local `__GI_qsort`, `free` rather than `__libc_free` or `cfree@GLIBC_2.2.5`.
bool preferred(const FunctionSymbol& a, const FunctionSymbol& b) {
    if (a.sized != b.sized) return a.sized;
    if (binding_rank(a.binding) != binding_rank(b.binding)) return binding_rank(a.binding) < binding_rank(b.binding);
    if (a.old_version != b.old_version) return b.old_version;
    if (leading_underscores(a.name) != leading_underscores(b.name)) {
        return leading_underscores(a.name) < leading_underscores(b.name);
    }
    return a.name < b.name;
}

std::vector<bool> executable_sections(const ElfFile& elf) {
    std::vector<bool> executable(elf.sections().size(), false);
    auto image = elf.image();
    Elf64_Ehdr header;
    std::memcpy(&header, image.data(), sizeof(header));
    for (std::size_t i = 0; i < executable.size(); ++i) {
        std::uint64_t at = header.e_shoff + i * sizeof(Elf64_Shdr);
        if (at > image.size() || sizeof(Elf64_Shdr) > image.size() - at) break;
        Elf64_Shdr section;
        std::memcpy(&section, image.data() + at, sizeof(section));
        executable[i] = (section.sh_flags & SHF_EXECINSTR) != 0;
    }
    return executable;
}

bool is_function(const Elf64_Sym& sym, const std::vector<bool>& executable) {
    switch (ELF64_ST_TYPE(sym.st_info)) {
        case STT_FUNC:
        case STT_GNU_IFUNC: return true;
        case STT_NOTYPE: return sym.st_size > 0 && executable[sym.st_shndx];
        default: return false;
    }
}

const ElfFile::Section* symbol_table_of(const ElfFile& elf) {
    const ElfFile::Section* dynsym = nullptr;
    for (const auto& section : elf.sections()) {
        if (section.type == SHT_SYMTAB) return &section;
        if (section.type == SHT_DYNSYM && dynsym == nullptr) dynsym = &section;
    }
    return dynsym;
}

// Function symbols by address, one per address.
class FunctionTable {
public:
    FunctionTable() = default;
    // From .symtab when present, else .dynsym.
    explicit FunctionTable(const ElfFile& elf) {
        if (const auto* table = symbol_table_of(elf)) read(elf, *table);
        std::sort(symbols_.begin(), symbols_.end(), [](const FunctionSymbol& a, const FunctionSymbol& b) {
            return a.start != b.start ? a.start < b.start : preferred(a, b);
        });
        auto same_start = [](const FunctionSymbol& a, const FunctionSymbol& b) { return a.start == b.start; };
        symbols_.erase(std::unique(symbols_.begin(), symbols_.end(), same_start), symbols_.end());
    }

    // The symbol whose [start, start + size) contains the address, else the nearest preceding
    // symbol without a size (hand-written assembly) in the same section.
    const FunctionSymbol* containing(std::uint64_t link_address) const {
        auto after = std::upper_bound(symbols_.begin(), symbols_.end(), link_address,
                                      [](std::uint64_t address, const FunctionSymbol& s) { return address < s.start; });
        if (after == symbols_.begin()) return nullptr;
        const FunctionSymbol& nearest = *std::prev(after);
        if (!nearest.sized) return link_address < nearest.end ? &nearest : nullptr;
        auto lookback = std::min<std::size_t>(kMaxNestingLookback, after - symbols_.begin());
        for (auto it = std::prev(after); lookback-- > 0; --it) {
            if (it->sized && link_address < it->end) return &*it;
            if (it == symbols_.begin()) break;
        }
        return nullptr;
    }

private:
    void read(const ElfFile& elf, const ElfFile::Section& table) {
        auto entries = elf.section_data(table);
        if (table.link >= elf.sections().size()) return;
        auto strings = elf.section_data(elf.sections()[table.link]);
        auto executable = executable_sections(elf);
        for (std::size_t at = 0; at + sizeof(Elf64_Sym) <= entries.size(); at += sizeof(Elf64_Sym)) {
            Elf64_Sym sym;
            std::memcpy(&sym, entries.data() + at, sizeof(sym));
            if (sym.st_shndx == SHN_UNDEF || sym.st_shndx >= executable.size() || sym.st_name >= strings.size() ||
                !is_function(sym, executable)) {
                continue;
            }
            const char* name = reinterpret_cast<const char*>(strings.data() + sym.st_name);
            FunctionSymbol symbol;
            symbol.start = sym.st_value;
            symbol.sized = sym.st_size > 0;
            const auto& section = elf.sections()[sym.st_shndx];
            symbol.end = symbol.sized ? sym.st_value + sym.st_size : section.addr + section.size;
            symbol.binding = ELF64_ST_BIND(sym.st_info);
            std::string_view versioned(name, ::strnlen(name, strings.size() - sym.st_name));
            auto version = versioned.find('@');
            symbol.name = versioned.substr(0, version);
            symbol.old_version = version != std::string_view::npos && versioned.substr(version, 2) != "@@";
            if (!symbol.name.empty()) symbols_.push_back(symbol);
        }
    }

    std::vector<FunctionSymbol> symbols_;  // sorted by start
};

struct FreeDeleter {
    void operator()(char* p) const { std::free(p); }
};

// A clone suffix (`.cold`, `.part.0`, `.constprop.0`) is kept as it is after the demangled name,
// so that callers can match the name and `name.` prefixes alike.
std::string demangle(std::string_view name) {
    if (!name.starts_with("_Z")) return std::string(name);
    auto suffix = name.find('.');
    std::string mangled(name.substr(0, suffix));
    int status = 0;
    std::unique_ptr<char, FreeDeleter> plain(abi::__cxa_demangle(mangled.c_str(), nullptr, nullptr, &status));
    if (status != 0 || !plain) return std::string(name);
    std::string result(plain.get());
    if (suffix != std::string_view::npos) result += name.substr(suffix);
    return result;
}

bool has_section_data(const ElfFile& elf, std::string_view name) {
    const auto* section = elf.section(name);
    return section != nullptr && section->type != SHT_NOBITS && section->size > 0;
}

// The file name recorded in .gnu_debuglink (followed there by padding and a CRC).
std::optional<std::string> debuglink_name(const ElfFile& elf) {
    const auto* section = elf.section(".gnu_debuglink");
    if (section == nullptr) return std::nullopt;
    auto bytes = elf.section_data(*section);
    const char* start = reinterpret_cast<const char*>(bytes.data());
    std::string name(start, ::strnlen(start, bytes.size()));
    if (name.empty() || name.find('/') != std::string::npos) return std::nullopt;
    return name;
}

std::string directory_of(const std::string& path) {
    auto slash = path.rfind('/');
    return slash == std::string::npos ? std::string() : path.substr(0, slash);
}

bool same_file(const std::string& a, const std::string& b) {
    struct stat sa {};
    struct stat sb {};
    return ::stat(a.c_str(), &sa) == 0 && ::stat(b.c_str(), &sb) == 0 && sa.st_dev == sb.st_dev &&
           sa.st_ino == sb.st_ino;
}

}  // namespace

struct NativeSymbolizer::ModuleSymbols {
    std::shared_ptr<const ElfFile> elf;         // the module's file as the ModuleMap opened it
    std::shared_ptr<const ElfFile> debug_file;  // separate debug information, when found
    FunctionTable functions;                    // names point into elf or debug_file
    std::unique_ptr<DwarfLines> lines;          // nullptr without DWARF
};

NativeSymbolizer::NativeSymbolizer(ModuleMap& modules, std::string debug_root)
    : modules_(modules), debug_root_(std::move(debug_root)), generation_(modules.generation()) {}

NativeSymbolizer::~NativeSymbolizer() = default;

const NativeFrameInfo& NativeSymbolizer::lookup(std::uint64_t address) {
    try {
        if (auto cached = cache_.find(address); cached != cache_.end()) return cached->second;
        // Not cached when unknown: the address may belong to a library loaded later.
        const Module* module = modules_.find(address);
        if (module == nullptr) return unknown_;
        return cache_.emplace(address, resolve(*module, address)).first->second;
    } catch (const std::exception& e) {
        spdlog::debug("pid {}: no native symbol for {:#x}: {}", modules_.pid(), address, e.what());
        return unknown_;
    }
}

NativeFrameInfo NativeSymbolizer::resolve(const Module& module, std::uint64_t address) {
    NativeFrameInfo info;
    info.module = module.name;
    info.module_path = module.path;
    info.module_offset = module.offset_of(address);
    if (!module.elf) return info;

    ModuleSymbols& symbols = symbols_of(module);
    std::uint64_t link_address = module.link_address(address);
    if (const auto* function = symbols.functions.containing(link_address)) {
        info.function = demangle(function->name);
        info.module_offset = module.offset_of(function->start + module.bias);
    } else if (auto start = unwind_function_start(*module.elf, link_address)) {
        info.unnamed_function = true;
        info.module_offset = module.offset_of(*start + module.bias);
    }
    if (symbols.lines) {
        if (auto source = symbols.lines->find(link_address)) {
            info.source_file = std::move(source->file);
            info.line = source->line;
        }
    }
    return info;
}

NativeSymbolizer::ModuleSymbols& NativeSymbolizer::symbols_of(const Module& module) {
    auto& slot = symbols_[ModuleKey{module.path, module.start}];
    if (!slot || slot->elf != module.elf) slot = load_symbols(module);
    return *slot;
}

std::unique_ptr<NativeSymbolizer::ModuleSymbols> NativeSymbolizer::load_symbols(const Module& module) {
    auto symbols = std::make_unique<ModuleSymbols>();
    symbols->elf = module.elf;
    const ElfFile& elf = *module.elf;
    bool has_dwarf = has_section_data(elf, ".debug_info");
    if (!elf.has_symtab() || !has_dwarf) symbols->debug_file = find_debug_file(module);
    const ElfFile* debug = symbols->debug_file.get();

    bool symtab_in_debug_file = !elf.has_symtab() && debug != nullptr && debug->has_symtab();
    symbols->functions = FunctionTable(symtab_in_debug_file ? *debug : elf);

    const ElfFile* dwarf_file = has_dwarf ? &elf : nullptr;
    if (dwarf_file == nullptr && debug != nullptr && has_section_data(*debug, ".debug_info")) dwarf_file = debug;
    if (dwarf_file != nullptr) {
        try {
            symbols->lines = std::make_unique<DwarfLines>(dwarf_file->path());
        } catch (const std::exception& e) {
            log_once(dwarf_file->path(), e.what());
        }
    }
    return symbols;
}

std::shared_ptr<const ElfFile> NativeSymbolizer::find_debug_file(const Module& module) {
    const ElfFile& elf = *module.elf;
    std::vector<std::string> candidates;  // as the target sees them
    std::string build_id = elf.build_id();
    if (build_id.size() > 2) {
        candidates.push_back(debug_root_ + "/.build-id/" + build_id.substr(0, 2) + "/" + build_id.substr(2) + ".debug");
    }
    if (auto link = debuglink_name(elf)) {
        std::string directory = directory_of(module.path);
        candidates.push_back(directory + "/" + *link);
        candidates.push_back(directory + "/.debug/" + *link);
        candidates.push_back(debug_root_ + directory + "/" + *link);
    }
    for (const auto& candidate : candidates) {
        std::string in_root = modules_.target().file_in_root(candidate);
        if (auto debug = open_debug_candidate(in_root, elf)) return debug;
        if (in_root == candidate) continue;
        if (auto debug = open_debug_candidate(candidate, elf)) return debug;
    }
    return nullptr;
}

std::shared_ptr<const ElfFile> NativeSymbolizer::open_debug_candidate(const std::string& path,
                                                                      const ElfFile& module_file) {
    if (::access(path.c_str(), F_OK) != 0 || same_file(path, module_file.path())) return nullptr;
    try {
        auto debug = std::make_shared<const ElfFile>(path);
        std::string expected = module_file.build_id();
        std::string found = debug->build_id();
        if (!expected.empty() && !found.empty() && expected != found) {
            log_once(path, "build id " + found + " is not the build id " + expected + " of " + module_file.path());
            return nullptr;
        }
        if (!debug->has_symtab() && !has_section_data(*debug, ".debug_info")) return nullptr;
        return debug;
    } catch (const std::exception& e) {
        log_once(path, e.what());
        return nullptr;
    }
}

void NativeSymbolizer::trim() {
    forget_unloaded_modules();
    if (cache_.size() >= kMaxCachedAddresses) cache_.clear();
}

void NativeSymbolizer::forget_unloaded_modules() {
    if (modules_.generation() == generation_) return;
    generation_ = modules_.generation();
    cache_.clear();
    const auto& loaded = modules_.modules();
    std::erase_if(symbols_, [&](const auto& entry) {
        return std::none_of(loaded.begin(), loaded.end(), [&](const Module& module) {
            return entry.second && module.path == entry.first.first && module.start == entry.first.second &&
                   module.elf == entry.second->elf;
        });
    });
}

void NativeSymbolizer::log_once(const std::string& path, const std::string& what) {
    if (logged_paths_.insert(path).second) {
        spdlog::debug("pid {}: cannot use {} for native symbols: {}", modules_.pid(), path, what);
    }
}

}  // namespace pysample::symbolize
