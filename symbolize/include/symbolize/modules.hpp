// The ELF files and other mappings of a target, found by address.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "attach/maps.hpp"
#include "attach/target.hpp"
#include "symbolize/elf.hpp"

namespace pysample::symbolize {

// One file mapped into the process (all of its mappings together).
struct Module {
    std::string path;                    // as the target sees it (from /proc/PID/maps)
    std::string name;                    // file name without directories, e.g. "libc.so.6"
    std::uint64_t start = 0;             // lowest address of any of its mappings
    std::uint64_t end = 0;               // one past the highest
    std::uint64_t bias = 0;              // runtime address minus link-time address
    std::shared_ptr<const ElfFile> elf;  // nullptr when the file could not be opened or parsed

    // Offset of a runtime address from where the file is loaded (what `name+0x...` shows).
    std::uint64_t offset_of(std::uint64_t address) const { return address - start; }
    std::uint64_t link_address(std::uint64_t address) const { return address - bias; }
};

class ModuleMap {
public:
    // Reads the target's maps now; throws attach::Error when the process is gone.
    explicit ModuleMap(attach::Target& target);

    // The module whose mappings contain `address`. An unknown address re-reads the maps (at most
    // every few milliseconds), since libraries are loaded and unloaded at run time.
    const Module* find(std::uint64_t address);
    // The mapping (file-backed or anonymous, e.g. a thread's stack) containing `address`.
    const attach::MapEntry* mapping(std::uint64_t address);
    // Re-reads the maps; modules whose file and load address did not change are kept. Returns
    // false when the process is gone.
    bool refresh();
    // Increases whenever a refresh changed the set of modules.
    std::uint64_t generation() const { return generation_; }
    pid_t pid() const { return target_.pid(); }
    attach::Target& target() const { return target_; }
    const std::vector<Module>& modules() const { return modules_; }

private:
    bool refresh_if_due();

    attach::Target& target_;
    std::vector<attach::MapEntry> maps_;  // sorted by start
    std::vector<Module> modules_;         // sorted by start
    std::uint64_t generation_ = 0;
    std::chrono::steady_clock::time_point last_refresh_{};
};

}  // namespace pysample::symbolize
