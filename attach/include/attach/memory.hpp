#pragma once

#include <sys/types.h>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>
#include <string>
#include <unordered_map>
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
};

// Reads another process's memory. Implementations exist for a live process; the interface keeps
// the Python side independent of where the bytes come from.
class Memory {
public:
    virtual ~Memory() = default;
    // Reads exactly `len` bytes or returns false.
    virtual bool read(std::uint64_t addr, void* dest, std::size_t len) = 0;
    // Reads several ranges at once; returns how many of the requests were read completely.
    virtual std::size_t read_many(std::span<const ReadRequest> requests);

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
    std::size_t read_many(std::span<const ReadRequest> requests) override;
    pid_t pid() const { return pid_; }
    std::uint64_t failed_reads() const { return failed_reads_; }

private:
    bool read_proc_mem(std::uint64_t addr, void* dest, std::size_t len);

    pid_t pid_;
    int mem_fd_ = -1;
    bool use_proc_mem_ = false;
    std::uint64_t failed_reads_ = 0;
};

// Caches whole pages of an underlying reader until clear(): one sample's frames that share pages
// (3.11+ frames sit next to each other in the thread's data stack) cost one read, and every read in
// a sample sees memory from nearly the same instant.
class PageCache final : public Memory {
public:
    explicit PageCache(Memory& backing, std::size_t max_pages = 256);
    bool read(std::uint64_t addr, void* dest, std::size_t len) override;
    void clear();

private:
    static constexpr std::uint64_t kPageSize = 4096;

    Memory& backing_;
    std::size_t max_pages_;
    std::unordered_map<std::uint64_t, std::vector<std::uint8_t>> pages_;
};

}  // namespace pysample::attach
