#include "model/thread_names.hpp"

#include <spdlog/spdlog.h>

#include "model/debug_offsets.hpp"

namespace pysample::sampler {
namespace {

constexpr std::size_t kMaxNameChars = 256;
constexpr std::size_t kPageCachePages = 1024;

}  // namespace

bool NameRefreshSchedule::due(Clock::time_point now, std::span<const std::uint64_t> idents) const {
    if (!last_) return true;
    auto since = now - *last_;
    if (since >= kPeriod) return true;
    if (since < kMinimumGap) return false;
    for (std::uint64_t ident : idents) {
        if (ident == 0) continue;
        auto seen = first_seen_.find(ident);
        if (seen == first_seen_.end()) return true;
        // A thread not named yet (threading may not even be imported) is looked for again, less often.
        if (unnamed_.count(ident) != 0 && now - seen->second < kRetryUnnamedFor && since >= kRetryUnnamedEvery) {
            return true;
        }
    }
    return false;
}

void NameRefreshSchedule::refreshed(Clock::time_point now, std::span<const std::uint64_t> idents,
                                    const std::set<std::uint64_t>& named) {
    std::map<std::uint64_t, Clock::time_point> seen;
    unnamed_.clear();
    for (std::uint64_t ident : idents) {
        if (ident == 0) continue;
        auto earlier = first_seen_.find(ident);
        seen[ident] = earlier != first_seen_.end() ? earlier->second : now;
        if (named.count(ident) == 0) unnamed_.insert(ident);
    }
    first_seen_ = std::move(seen);
    last_ = now;
}

ThreadingNamesReader::ThreadingNamesReader(attach::Memory& memory, const PythonLayout& layout,
                                           const symbolize::CodeObjectLayout& strings, pid_t pid)
    : objects_(memory, layout, strings, pid), pid_(pid) {}

// threading._active, 0 while threading is not imported; nullopt when it cannot be read.
std::optional<std::uint64_t> ThreadingNamesReader::active_threads_dict(std::uint64_t interp) {
    std::uint64_t address = interp + static_cast<std::uint64_t>(objects_.layout().interp_modules);
    std::uint64_t modules = 0;
    if (!objects_.memory().read_value(address, modules) || !objects_.has_type(modules, "dict") ||
        !objects_.dict_items(modules, active_)) {
        spdlog::debug("pid {}: thread names: no sys.modules dict at {:#x}", pid_, address);
        return std::nullopt;
    }
    auto threading = objects_.find_str_key(active_, "threading");
    if (!threading || !objects_.has_type(*threading, "module")) return 0;
    auto globals = objects_.module_dict(*threading);
    if (!globals) {
        spdlog::debug("pid {}: thread names: threading module at {:#x} has no dict", pid_, *threading);
        return std::nullopt;
    }
    auto active = objects_.dict_get(*globals, "_active");
    if (!active || !objects_.has_type(*active, "dict")) {
        spdlog::debug("pid {}: thread names: no threading._active dict in {:#x}", pid_, *globals);
        return std::nullopt;
    }
    return *active;
}

std::optional<std::string> ThreadingNamesReader::thread_name(std::uint64_t thread) {
    auto name = objects_.attribute(thread, objects_.facts().thread_name_attribute);
    if (!name) return std::nullopt;
    return objects_.str_value(*name, kMaxNameChars);
}

std::optional<std::unordered_map<std::uint64_t, std::string>> ThreadingNamesReader::read(std::uint64_t interp) {
    auto active = active_threads_dict(interp);
    if (!active) return std::nullopt;
    std::unordered_map<std::uint64_t, std::string> names;
    if (*active == 0) return names;
    if (!objects_.dict_items(*active, active_)) {
        spdlog::debug("pid {}: thread names: threading._active at {:#x} unreadable", pid_, *active);
        return std::nullopt;
    }
    for (const auto& [key, thread] : active_) {
        auto ident = objects_.int_value(key);
        auto name = ident ? thread_name(thread) : std::nullopt;
        if (!name) {
            spdlog::debug("pid {}: thread names: no name for the thread object at {:#x} (key {:#x})", pid_, thread,
                          key);
            continue;
        }
        if (!name->empty()) names[*ident] = printable_name(*name);
    }
    return names;
}

ThreadNames::ThreadNames(PythonProcess& process) : pid_(process.pid()), pages_(process.memory(), kPageCachePages) {
    reader_ = std::make_unique<ThreadingNamesReader>(pages_, process.layout(), process.code_layout(), pid_);
}

void ThreadNames::update(std::uint64_t interp, std::span<const std::uint64_t> idents) {
    if (!reader_ || interp == 0) return;
    auto now = NameRefreshSchedule::Clock::now();
    if (!schedule_.due(now, idents)) return;
    pages_.clear();
    // A failed read keeps the names read before: most threads still have them.
    if (auto names = reader_->read(interp)) names_ = std::move(*names);
    std::set<std::uint64_t> named;
    for (std::uint64_t ident : idents) {
        if (names_.count(ident) != 0) named.insert(ident);
    }
    schedule_.refreshed(now, idents, named);
}

const std::string* ThreadNames::find(std::uint64_t ident) const {
    auto it = names_.find(ident);
    return it == names_.end() ? nullptr : &it->second;
}

}  // namespace pysample::sampler
