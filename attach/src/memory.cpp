#include "attach/memory.hpp"

#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

namespace pysample::attach {

std::size_t Memory::read_many(std::span<ReadRequest> requests) {
    std::size_t complete = 0;
    for (auto& request : requests) {
        request.done = read(request.addr, request.dest, request.len);
        if (request.done) ++complete;
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
std::size_t ProcessMemory::read_many(std::span<ReadRequest> requests) {
    if (use_proc_mem_) return Memory::read_many(requests);
    constexpr std::size_t kBatch = 512;
    std::size_t complete = 0;
    auto& local = local_;
    auto& remote = remote_;
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
            for (std::size_t i = first; i < first + count; ++i) requests[i].done = true;
            complete += count;
            first += count;
            continue;
        }
        // Count what arrived whole, then retry the failing request alone and move past it.
        std::size_t done = 0;
        std::size_t bytes = got > 0 ? static_cast<std::size_t>(got) : 0;
        while (done < count && bytes >= requests[first + done].len) {
            bytes -= requests[first + done].len;
            requests[first + done].done = true;
            ++done;
        }
        complete += done;
        first += done;
        if (first < requests.size()) {
            requests[first].done = read(requests[first].addr, requests[first].dest, requests[first].len);
            if (requests[first].done) ++complete;
            ++first;
        }
    }
    return complete;
}

PageCache::PageCache(Memory& backing, std::size_t max_pages)
    : backing_(backing),
      max_pages_(std::max<std::size_t>(max_pages, 8)),
      arena_(new std::uint8_t[max_pages_ * kPageSize]) {
    std::size_t table = 16;
    while (table < 2 * max_pages_) table *= 2;
    slots_.resize(table);
}

PageCache::Slot* PageCache::find(std::uint64_t page) {
    std::size_t mask = slots_.size() - 1;
    for (std::size_t i = (page / kPageSize) & mask;; i = (i + 1) & mask) {
        Slot& slot = slots_[i];
        if (slot.generation != generation_) return nullptr;
        if (slot.page == page) return &slot;
    }
}

PageCache::Slot* PageCache::insert(std::uint64_t page, std::uint32_t index) {
    std::size_t mask = slots_.size() - 1;
    for (std::size_t i = (page / kPageSize) & mask;; i = (i + 1) & mask) {
        Slot& slot = slots_[i];
        if (slot.generation != generation_) {
            slot = {page, index, generation_, 0};
            return &slot;
        }
    }
}

void PageCache::reset() {
    if (++generation_ == 0) {
        for (auto& slot : slots_) slot.generation = 0;
        generation_ = 1;
    }
    pages_held_ = 0;
    last_generation_ = 0;
}

void PageCache::clear() {
    make_plan();
    used_.clear();
    misses_ = 0;
    reset();
}

void PageCache::refresh() { reset(); }

void PageCache::note_use(Slot& slot) {
    if (slot.used == generation_) return;
    slot.used = generation_;
    used_.push_back(slot.page);
}

// Contiguous pages become one run; runs keep the order in which the sample first reached them.
void PageCache::make_plan() {
    plan_.clear();
    if (used_.empty()) return;
    auto& by_address = scratch_pages_;
    by_address.clear();
    for (std::size_t i = 0; i < used_.size(); ++i) by_address.emplace_back(used_[i], i);
    std::sort(by_address.begin(), by_address.end());
    // A page the sample used again after the cache filled up is listed twice.
    by_address.erase(std::unique(by_address.begin(), by_address.end(),
                                 [](const auto& a, const auto& b) { return a.first == b.first; }),
                     by_address.end());
    auto& runs = scratch_runs_;
    runs.clear();
    for (std::size_t i = 0; i < by_address.size();) {
        std::size_t j = i + 1;
        std::size_t first_use = by_address[i].second;
        while (j < by_address.size() && by_address[j].first == by_address[j - 1].first + kPageSize) {
            first_use = std::min(first_use, by_address[j].second);
            ++j;
        }
        runs.push_back({first_use, {by_address[i].first, j - i}});
        i = j;
    }
    std::sort(runs.begin(), runs.end());
    std::size_t pages = 0;
    for (const auto& [order, run] : runs) {
        if (plan_.size() == kMaxPlanRuns || pages + run.second > max_pages_) break;
        plan_.push_back(run);
        pages += run.second;
    }
}

std::size_t PageCache::prefetch() {
    if (plan_.empty()) return 0;
    requests_.clear();
    std::size_t index = pages_held_;
    for (const auto& [first, count] : plan_) {
        if (index + count > max_pages_) break;
        requests_.push_back({first, arena_.get() + index * kPageSize, count * kPageSize});
        index += count;
    }
    std::size_t runs = requests_.size();
    // A run that fails (a thread exited and its memory went) leaves its pages to be read on demand.
    backing_.read_many(requests_);
    for (std::size_t i = 0; i < runs; ++i) {
        const auto& request = requests_[i];
        if (!request.done) continue;
        auto first_index =
            static_cast<std::uint32_t>((static_cast<std::uint8_t*>(request.dest) - arena_.get()) / kPageSize);
        for (std::size_t k = 0; k < request.len / kPageSize; ++k) {
            if (find(request.addr + k * kPageSize) == nullptr) {
                insert(request.addr + k * kPageSize, first_index + static_cast<std::uint32_t>(k));
            }
        }
    }
    pages_held_ = index;
    return runs;
}

// Pages of [first, end) not cached yet are fetched together, in one batched read.
bool PageCache::fetch_missing(std::uint64_t first, std::uint64_t end) {
    std::size_t needed = 0;
    for (std::uint64_t page = first; page < end; page += kPageSize) {
        if (find(page) == nullptr) ++needed;
    }
    if (needed == 0) return true;
    if (pages_held_ + needed > max_pages_) {
        // Full: start over, keeping what this sample used for the next plan.
        reset();
        return fetch_missing(first, end);
    }
    requests_.clear();
    std::size_t index = pages_held_;
    for (std::uint64_t page = first; page < end; page += kPageSize) {
        if (find(page) != nullptr) continue;
        requests_.push_back({page, arena_.get() + index * kPageSize, kPageSize});
        ++index;
    }
    if (backing_.read_many(requests_) != requests_.size()) return false;
    for (const auto& request : requests_) {
        insert(request.addr,
               static_cast<std::uint32_t>((static_cast<std::uint8_t*>(request.dest) - arena_.get()) / kPageSize));
    }
    pages_held_ = index;
    misses_ += requests_.size();
    return true;
}

bool PageCache::read(std::uint64_t addr, void* dest, std::size_t len) {
    if (len == 0) return true;
    // A pointer out of a torn stack may be anything: no page walk may run past user space or wrap.
    constexpr std::uint64_t kUserSpaceEnd = std::uint64_t{1} << 56;  // 5-level paging's limit
    if (addr >= kUserSpaceEnd || len > kUserSpaceEnd - addr) return false;
    // Most reads of a walk fall in the page the previous one read.
    if (last_generation_ == generation_ && (addr & ~(kPageSize - 1)) == last_page_ &&
        (addr & (kPageSize - 1)) + len <= kPageSize) {
        std::memcpy(dest, last_data_ + (addr - last_page_), len);
        return true;
    }
    if (len > 4 * kPageSize) return backing_.read(addr, dest, len);
    std::uint64_t first = addr & ~(kPageSize - 1);
    std::uint64_t end = addr + len;
    // A page at the edge of a mapping may be unreadable while the bytes asked for are not.
    if (!fetch_missing(first, end)) return backing_.read(addr, dest, len);
    auto* out = static_cast<std::uint8_t*>(dest);
    for (std::uint64_t cur = addr; cur < end;) {
        std::uint64_t page = cur & ~(kPageSize - 1);
        std::uint64_t chunk = std::min(end, page + kPageSize) - cur;
        Slot* slot = find(page);
        note_use(*slot);
        std::memcpy(out + (cur - addr), page_data(*slot) + (cur - page), chunk);
        last_page_ = page;
        last_data_ = page_data(*slot);
        last_generation_ = generation_;
        cur += chunk;
    }
    return true;
}

}  // namespace pysample::attach
