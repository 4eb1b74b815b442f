#include "symbolize/modules.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <map>

#include "attach/error.hpp"
#include "attach/maps.hpp"

namespace pysample::symbolize {
namespace {

constexpr auto kMinRefreshInterval = std::chrono::milliseconds(20);

constexpr std::string_view kVdso = "[vdso]";

bool is_module_mapping(const attach::MapEntry& entry) {
    return (!entry.path.empty() && entry.path.front() == '/') || entry.path == kVdso;
}

// The vDSO (clock_gettime and friends) has no file: its image is read out of the process.
std::shared_ptr<const ElfFile> load_vdso(attach::Target& target, const attach::MapEntry& mapping) {
    std::vector<std::uint8_t> image(mapping.end - mapping.start);
    if (!target.memory().read(mapping.start, image.data(), image.size())) {
        throw std::runtime_error("cannot read the vDSO of " + target.label());
    }
    return std::make_shared<const ElfFile>(std::string(kVdso), std::move(image));
}

template <typename T>
const T* containing(const std::vector<T>& sorted, std::uint64_t address) {
    auto it = std::upper_bound(sorted.begin(), sorted.end(), address,
                               [](std::uint64_t a, const T& item) { return a < item.start; });
    if (it == sorted.begin()) return nullptr;
    --it;
    return address < it->end ? &*it : nullptr;
}

}  // namespace

ModuleMap::ModuleMap(attach::Target& target) : target_(target) {
    maps_ = target.maps();
    refresh();
}

bool ModuleMap::refresh() {
    last_refresh_ = std::chrono::steady_clock::now();
    try {
        maps_ = target_.maps();
    } catch (const attach::Error&) {
        return false;
    }
    std::sort(maps_.begin(), maps_.end(), [](const auto& a, const auto& b) { return a.start < b.start; });

    // A file may be mapped more than once (dlopen'ed again after dlclose): each contiguous run of
    // its mappings that starts at file offset 0 is one module.
    std::vector<Module> fresh;
    std::vector<const attach::MapEntry*> first_mappings;
    std::map<std::string, std::size_t> open_run;
    for (const auto& entry : maps_) {
        if (!is_module_mapping(entry)) continue;
        auto run = open_run.find(entry.path);
        if (run != open_run.end() && entry.offset != 0) {
            fresh[run->second].end = std::max(fresh[run->second].end, entry.end);
            continue;
        }
        Module module;
        module.path = entry.path;
        module.name = attach::base_name(entry.path);
        module.start = entry.start;
        module.end = entry.end;
        module.bias = entry.start - entry.offset;
        open_run[entry.path] = fresh.size();
        fresh.push_back(std::move(module));
        first_mappings.push_back(&entry);
    }

    bool changed = fresh.size() != modules_.size();
    for (std::size_t m = 0; m < fresh.size(); ++m) {
        Module& module = fresh[m];
        auto same = std::find_if(modules_.begin(), modules_.end(), [&](const Module& old) {
            return old.path == module.path && old.start == module.start;
        });
        if (same != modules_.end()) {
            module.elf = same->elf;
            module.bias = same->bias;
            module.end = std::max(module.end, same->end);
            continue;
        }
        changed = true;
        try {
            attach::MapEntry lowest = *first_mappings[m];
            lowest.end = module.end;
            lowest.offset = 0;
            module.elf = module.path == kVdso
                             ? load_vdso(target_, lowest)
                             : std::make_shared<const ElfFile>(target_.mapped_file(*first_mappings[m]));
            module.bias = module.elf->load_bias(lowest);
        } catch (const std::exception& e) {
            spdlog::debug("{}: {} is not a readable ELF file: {}", target_.label(), module.path, e.what());
        }
    }
    // Mappings of one module are not always contiguous: keep the overlap-free order by start.
    std::sort(fresh.begin(), fresh.end(), [](const auto& a, const auto& b) { return a.start < b.start; });
    modules_ = std::move(fresh);
    if (changed) ++generation_;
    return true;
}

bool ModuleMap::refresh_if_due() {
    if (std::chrono::steady_clock::now() - last_refresh_ < kMinRefreshInterval) return false;
    return refresh();
}

const Module* ModuleMap::find(std::uint64_t address) {
    if (const auto* module = containing(modules_, address)) return module;
    if (!refresh_if_due()) return nullptr;
    return containing(modules_, address);
}

const attach::MapEntry* ModuleMap::mapping(std::uint64_t address) {
    if (const auto* entry = containing(maps_, address)) return entry;
    if (!refresh_if_due()) return nullptr;
    return containing(maps_, address);
}

}  // namespace pysample::symbolize
