// The names Python programs give their threads (threading.Thread(name=...)), read from the
// threading module's `_active` dict: thread ident -> Thread object, whose `_name` is the name.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <span>
#include <string>
#include <unordered_map>

#include "attach/memory.hpp"
#include "model/pydict.hpp"
#include "model/python_process.hpp"

namespace pysample::sampler {

// When to read the names again. Reading is cheap but not free, so it happens when a sample
// shows a thread ident not seen before, when a thread seen recently has no name yet (it was
// caught before threading registered it), and otherwise once a period, which picks up renamed
// threads and reused idents.
class NameRefreshSchedule {
public:
    using Clock = std::chrono::steady_clock;
    static constexpr std::chrono::milliseconds kPeriod{1000};
    static constexpr std::chrono::milliseconds kMinimumGap{100};
    static constexpr std::chrono::milliseconds kRetryUnnamedFor{2000};
    static constexpr std::chrono::milliseconds kRetryUnnamedEvery{500};

    bool due(Clock::time_point now, std::span<const std::uint64_t> idents) const;
    // Records a read at `now` for a sample showing `idents`, of which `named` got a name.
    void refreshed(Clock::time_point now, std::span<const std::uint64_t> idents, const std::set<std::uint64_t>& named);

private:
    std::optional<Clock::time_point> last_;
    std::map<std::uint64_t, Clock::time_point> first_seen_;
    std::set<std::uint64_t> unnamed_;
};

// Ident -> name, as Python's threading module has them; nullopt when the module cannot be read.
// An empty map when threading is not imported.
class ThreadingNamesReader {
public:
    ThreadingNamesReader(attach::Memory& memory, const PythonLayout& layout, const symbolize::CodeObjectLayout& strings,
                         pid_t pid);

    std::optional<std::unordered_map<std::uint64_t, std::string>> read(std::uint64_t interp);

private:
    std::optional<std::uint64_t> active_threads_dict(std::uint64_t interp);
    std::optional<std::string> thread_name(std::uint64_t thread);

    ObjectReader objects_;
    pid_t pid_;
    std::vector<DictItem> active_;
};

class ThreadNames {
public:
    explicit ThreadNames(PythonProcess& process);

    // Reads the names again when the schedule says so; `idents` are the pthread ids
    // (threading.get_ident()) of the threads in the current sample.
    void update(std::uint64_t interp, std::span<const std::uint64_t> idents);
    // The thread's Python name, nullptr when it has none.
    const std::string* find(std::uint64_t ident) const;

private:
    pid_t pid_;
    attach::PageCache pages_;
    std::unique_ptr<ThreadingNamesReader> reader_;
    NameRefreshSchedule schedule_;
    std::unordered_map<std::uint64_t, std::string> names_;
};

}  // namespace pysample::sampler
