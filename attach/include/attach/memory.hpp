#pragma once

#include <sys/types.h>
#include <sys/uio.h>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <span>
#include <string>
#include <utility>
#include <vector>

namespace pysample::attach {

// A field of a struct copied out of the target: zero when the offset is -1 (absent in this
// version) or the bytes are too short.
template <typename T>
T field_at(const std::vector<std::uint8_t>& bytes, std::int64_t offset) {
    T value{};
    if (offset >= 0 && static_cast<std::size_t>(offset) + sizeof(T) <= bytes.size()) {
        std::memcpy(&value, bytes.data() + offset, sizeof(T));
    }
    return value;
}

struct ReadRequest {
    std::uint64_t addr;
    void* dest;
    std::size_t len;
    bool done = false;  // set by read_many: whether all `len` bytes were read
};

// Reads another process's memory. Implementations exist for a live process; the interface keeps
// the Python side independent of where the bytes come from.
class Memory {
public:
    virtual ~Memory() = default;
    // Reads exactly `len` bytes or returns false.
    virtual bool read(std::uint64_t addr, void* dest, std::size_t len) = 0;
    // Reads several ranges at once, marking each request done or not; returns how many are done.
    virtual std::size_t read_many(std::span<ReadRequest> requests);

    template <typename T>
    bool read_value(std::uint64_t addr, T& out) {
        return read(addr, &out, sizeof(T));
    }
};

// Live-process reader: process_vm_readv with many iovecs per call, falling back to /proc/PID/mem.
class ProcessMemory final : public Memory {
public:
    enum class Backend { VmReadv, ProcMem };
    // VmReadv switches to ProcMem by itself where process_vm_readv is not available (ENOSYS).
    explicit ProcessMemory(pid_t pid, Backend backend = Backend::VmReadv);
    ~ProcessMemory() override;
    ProcessMemory(const ProcessMemory&) = delete;
    ProcessMemory& operator=(const ProcessMemory&) = delete;

    bool read(std::uint64_t addr, void* dest, std::size_t len) override;
    std::size_t read_many(std::span<ReadRequest> requests) override;
    pid_t pid() const { return pid_; }
    std::uint64_t failed_reads() const { return failed_reads_; }

private:
    bool read_proc_mem(std::uint64_t addr, void* dest, std::size_t len);

    pid_t pid_;
    std::vector<::iovec> local_;
    std::vector<::iovec> remote_;
    int mem_fd_ = -1;
    bool use_proc_mem_ = false;
    std::uint64_t failed_reads_ = 0;
};

// Caches whole pages of an underlying reader until clear(): one sample's frames that share pages
// (3.11+ frames sit next to each other in the thread's data stack) cost one read, and every read in
// a sample sees memory from nearly the same instant.
//
// It also remembers which pages a sample used, in the order it first used them. prefetch() reads
// the previous sample's pages again, all in one call to the backing reader (one process_vm_readv),
// so a sample whose shape has not changed is copied in a single system call, its thread states
// before its frames; misses() tells whether the sample needed anything more.
class PageCache final : public Memory {
public:
    explicit PageCache(Memory& backing, std::size_t max_pages = 256);
    bool read(std::uint64_t addr, void* dest, std::size_t len) override;
    // Ends a sample: forgets the cached pages; the pages used since the last clear() become the
    // prefetch plan.
    void clear();
    // Forgets the cached pages within a sample (to read them afresh), still recording their use.
    void refresh();
    // Reads the plan's pages in one batch; returns how many page runs it asked for.
    std::size_t prefetch();
    // Pages read on demand since the last clear(), outside the prefetched batch.
    std::size_t misses() const { return misses_; }
    // The plan as (first page address, page count) runs, in the order of first use.
    const std::vector<std::pair<std::uint64_t, std::size_t>>& plan() const { return plan_; }

private:
    static constexpr std::uint64_t kPageSize = 4096;
    static constexpr std::size_t kMaxPlanRuns = 64;
    struct Slot {
        std::uint64_t page = 0;
        std::uint32_t index = 0;       // into the arena, in pages
        std::uint32_t generation = 0;  // the entry is empty unless it equals the cache's
        std::uint32_t used = 0;        // generation in which this sample used it
    };

    Slot* find(std::uint64_t page);
    Slot* insert(std::uint64_t page, std::uint32_t index);
    std::uint8_t* page_data(const Slot& slot) { return arena_.get() + std::size_t{slot.index} * kPageSize; }
    bool fetch_missing(std::uint64_t first, std::uint64_t end);
    void note_use(Slot& slot);
    void make_plan();
    void reset();

    Memory& backing_;
    std::size_t max_pages_;
    std::unique_ptr<std::uint8_t[]> arena_;  // not zeroed: its pages cost nothing until used
    std::vector<Slot> slots_;                // open addressing, power-of-two size
    std::uint32_t generation_ = 1;
    std::uint64_t last_page_ = 0;  // the page the last read ended in, while last_generation_ is current
    const std::uint8_t* last_data_ = nullptr;
    std::uint32_t last_generation_ = 0;
    std::size_t pages_held_ = 0;
    std::size_t misses_ = 0;
    std::vector<std::uint64_t> used_;  // pages in order of first use
    std::vector<std::pair<std::uint64_t, std::size_t>> plan_;
    // make_plan()'s working space, kept so that a sample allocates nothing.
    std::vector<std::pair<std::uint64_t, std::size_t>> scratch_pages_;  // page, order of first use
    std::vector<std::pair<std::size_t, std::pair<std::uint64_t, std::size_t>>> scratch_runs_;  // first use, run
    std::vector<ReadRequest> requests_;
};

}  // namespace pysample::attach
