#include "attach/memory.hpp"

#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

namespace pysample::attach {

std::size_t Memory::read_many(std::span<const ReadRequest> requests) {
    std::size_t complete = 0;
    for (const auto& request : requests) {
        if (read(request.addr, request.dest, request.len)) ++complete;
    }
    return complete;
}

ProcessMemory::ProcessMemory(pid_t pid, Backend backend) : pid_(pid), use_proc_mem_(backend == Backend::ProcMem) {}

ProcessMemory::~ProcessMemory() {
    if (mem_fd_ >= 0) ::close(mem_fd_);
}

bool ProcessMemory::read(std::uint64_t addr, void* dest, std::size_t len) {
    if (len == 0) return true;
    if (!use_proc_mem_) {
        iovec local{dest, len};
        iovec remote{reinterpret_cast<void*>(addr), len};
        ssize_t got = ::process_vm_readv(pid_, &local, 1, &remote, 1, 0);
        if (got == static_cast<ssize_t>(len)) return true;
        if (got < 0 && errno == ENOSYS) {
            spdlog::debug("process_vm_readv unavailable, reading /proc/{}/mem", pid_);
            use_proc_mem_ = true;
        } else {
            ++failed_reads_;
            return false;
        }
    }
    bool ok = read_proc_mem(addr, dest, len);
    if (!ok) ++failed_reads_;
    return ok;
}

bool ProcessMemory::read_proc_mem(std::uint64_t addr, void* dest, std::size_t len) {
    if (mem_fd_ < 0) {
        mem_fd_ = ::open(("/proc/" + std::to_string(pid_) + "/mem").c_str(), O_RDONLY | O_CLOEXEC);
        if (mem_fd_ < 0) return false;
    }
    ssize_t got = ::pread(mem_fd_, dest, len, static_cast<off_t>(addr));
    return got == static_cast<ssize_t>(len);
}

// One process_vm_readv call takes up to IOV_MAX iovecs; it stops at the first remote range that
// fails, so the requests after a failure are retried one by one.
std::size_t ProcessMemory::read_many(std::span<const ReadRequest> requests) {
    if (use_proc_mem_) return Memory::read_many(requests);
    constexpr std::size_t kBatch = 512;
    std::size_t complete = 0;
    std::vector<iovec> local;
    std::vector<iovec> remote;
    for (std::size_t first = 0; first < requests.size();) {
        std::size_t count = std::min(kBatch, requests.size() - first);
        local.clear();
        remote.clear();
        std::size_t total = 0;
        for (std::size_t i = first; i < first + count; ++i) {
            local.push_back({requests[i].dest, requests[i].len});
            remote.push_back({reinterpret_cast<void*>(requests[i].addr), requests[i].len});
            total += requests[i].len;
        }
        ssize_t got = ::process_vm_readv(pid_, local.data(), local.size(), remote.data(), remote.size(), 0);
        if (got == static_cast<ssize_t>(total)) {
            complete += count;
            first += count;
            continue;
        }
        // Count what arrived whole, then retry the failing request alone and move past it.
        std::size_t done = 0;
        std::size_t bytes = got > 0 ? static_cast<std::size_t>(got) : 0;
        while (done < count && bytes >= requests[first + done].len) {
            bytes -= requests[first + done].len;
            ++done;
        }
        complete += done;
        first += done;
        if (first < requests.size()) {
            if (read(requests[first].addr, requests[first].dest, requests[first].len)) ++complete;
            ++first;
        }
    }
    return complete;
}

PageCache::PageCache(Memory& backing, std::size_t max_pages) : backing_(backing), max_pages_(max_pages) {}

void PageCache::clear() { pages_.clear(); }

// Pages not cached yet are fetched together, in one batched read.
bool PageCache::read(std::uint64_t addr, void* dest, std::size_t len) {
    if (len == 0) return true;
    if (len > 4 * kPageSize) return backing_.read(addr, dest, len);
    std::uint64_t first = addr & ~(kPageSize - 1);
    std::uint64_t end = addr + len;
    if (pages_.size() + 5 > max_pages_) pages_.clear();
    std::vector<ReadRequest> missing;
    for (std::uint64_t page_addr = first; page_addr < end; page_addr += kPageSize) {
        auto [it, inserted] = pages_.try_emplace(page_addr);
        if (inserted) {
            it->second.resize(kPageSize);
            missing.push_back({page_addr, it->second.data(), kPageSize});
        }
    }
    if (!missing.empty() && backing_.read_many(missing) != missing.size()) {
        for (const auto& request : missing) pages_.erase(request.addr);
        // A page at the edge of a mapping may be unreadable while the bytes asked for are not.
        return backing_.read(addr, dest, len);
    }
    auto* out = static_cast<std::uint8_t*>(dest);
    for (std::uint64_t cur = addr; cur < end;) {
        std::uint64_t page_addr = cur & ~(kPageSize - 1);
        std::uint64_t chunk = std::min(end, page_addr + kPageSize) - cur;
        std::memcpy(out + (cur - addr), pages_[page_addr].data() + (cur - page_addr), chunk);
        cur += chunk;
    }
    return true;
}

}  // namespace pysample::attach
