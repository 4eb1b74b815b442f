#include "attach/core_file.hpp"

#include <elf.h>
#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <csignal>
#include <cstring>
#include <functional>
#include <unordered_map>

#include "attach/error.hpp"
#include "attach/threads.hpp"

namespace pysample::attach {
namespace {

constexpr std::size_t kPrstatusPid = 32;     // elf_prstatus.pr_pid (x86-64)
constexpr std::size_t kPrstatusCursig = 12;  // elf_prstatus.pr_cursig
constexpr std::size_t kPrstatusRegs = 112;   // elf_prstatus.pr_reg
constexpr std::size_t kUserRegsCount = 27;   // user_regs_struct, in 8-byte words
constexpr std::size_t kPrpsinfoPid = 24;     // elf_prpsinfo.pr_pid
constexpr std::size_t kPrpsinfoFname = 40;   // elf_prpsinfo.pr_fname[16]
constexpr std::size_t kPrpsinfoPsargs = 56;  // elf_prpsinfo.pr_psargs[80]
constexpr std::size_t kSiginfoAddress = 16;  // siginfo_t.si_addr

[[noreturn]] void bad(const std::string& name, const std::string& what) {
    throw Error(ErrorKind::BadInput, name + " " + what);
}

template <typename T>
T load(std::span<const std::uint8_t> bytes, std::size_t offset) {
    T value{};
    if (offset <= bytes.size() && sizeof(T) <= bytes.size() - offset)
        std::memcpy(&value, bytes.data() + offset, sizeof(T));
    return value;
}

std::string fixed_string(std::span<const std::uint8_t> bytes, std::size_t offset, std::size_t max) {
    if (offset >= bytes.size()) return {};
    auto len = std::min(max, bytes.size() - offset);
    const char* begin = reinterpret_cast<const char*>(bytes.data() + offset);
    return std::string(begin, strnlen(begin, len));
}

// x86-64's user_regs_struct: r15 r14 r13 r12 rbp rbx r11 r10 r9 r8 rax rcx rdx rsi rdi orig_rax rip ...
Registers registers_from_prstatus(std::span<const std::uint8_t> desc) {
    std::array<std::uint64_t, kUserRegsCount> r{};
    for (std::size_t i = 0; i < kUserRegsCount; ++i) r[i] = load<std::uint64_t>(desc, kPrstatusRegs + 8 * i);
    enum {
        R15,
        R14,
        R13,
        R12,
        RBP,
        RBX,
        R11,
        R10,
        R9,
        R8,
        RAX,
        RCX,
        RDX,
        RSI,
        RDI,
        ORIG_RAX,
        RIP,
        CS,
        EFLAGS,
        RSP,
        SS,
        FS_BASE
    };
    static_assert(FS_BASE == 21);
    Registers out;
    out.values = {r[RAX], r[RDX], r[RCX], r[RBX], r[RSI], r[RDI], r[RBP], r[RSP], r[R8],
                  r[R9],  r[R10], r[R11], r[R12], r[R13], r[R14], r[R15], r[RIP]};
    out.syscall = static_cast<std::int64_t>(r[ORIG_RAX]);
    return out;
}

void parse_file_note(std::span<const std::uint8_t> desc, CoreLayout& core) {
    auto count = load<std::uint64_t>(desc, 0);
    auto page_size = load<std::uint64_t>(desc, 8);
    constexpr std::size_t kEntry = 24;
    if (count > desc.size() / kEntry) return;
    std::size_t names = 16 + count * kEntry;
    for (std::uint64_t i = 0; i < count && names < desc.size(); ++i) {
        CoreLayout::MappedFile file;
        file.start = load<std::uint64_t>(desc, 16 + i * kEntry);
        file.end = load<std::uint64_t>(desc, 16 + i * kEntry + 8);
        file.offset = load<std::uint64_t>(desc, 16 + i * kEntry + 16) * page_size;
        file.path = fixed_string(desc, names, desc.size() - names);
        names += file.path.size() + 1;
        if (file.end > file.start) core.files.push_back(std::move(file));
    }
}

void parse_auxv(std::span<const std::uint8_t> desc, CoreLayout& core) {
    constexpr std::size_t kMaxPairs = 64;
    std::size_t at = 0;
    for (; at + 16 <= desc.size() && at / 16 < kMaxPairs; at += 16) {
        auto type = load<std::uint64_t>(desc, at);
        if (type == AT_NULL) break;
        if (type == AT_ENTRY) core.entry = load<std::uint64_t>(desc, at + 8);
        if (type == AT_EXECFN) core.executable_name = load<std::uint64_t>(desc, at + 8);
    }
    // Through its AT_NULL pair: the vector as the kernel put it on the stack.
    if (at + 16 <= desc.size() && load<std::uint64_t>(desc, at) == AT_NULL) {
        core.auxv.assign(desc.begin(), desc.begin() + static_cast<std::ptrdiff_t>(at + 16));
    }
}

void parse_note(std::uint32_t type, std::string_view owner, std::span<const std::uint8_t> desc, CoreLayout& core) {
    if (owner != "CORE" && owner != "LINUX") return;
    switch (type) {
        case NT_PRSTATUS: {
            CoreLayout::Thread thread;
            thread.tid = load<std::int32_t>(desc, kPrstatusPid);
            thread.signal = load<std::int16_t>(desc, kPrstatusCursig);
            thread.registers = registers_from_prstatus(desc);
            thread.thread_pointer = load<std::uint64_t>(desc, kPrstatusRegs + 8 * 21);  // fs_base
            core.threads.push_back(thread);
            break;
        }
        case NT_PRPSINFO:
            core.pid = load<std::int32_t>(desc, kPrpsinfoPid);
            core.program_name = fixed_string(desc, kPrpsinfoFname, 16);
            core.arguments = fixed_string(desc, kPrpsinfoPsargs, 80);
            while (!core.arguments.empty() && core.arguments.back() == ' ') core.arguments.pop_back();
            break;
        case NT_SIGINFO: {
            int signo = load<std::int32_t>(desc, 0);
            if (signo <= 0) break;
            core.signal = signo;
            core.signal_code = load<std::int32_t>(desc, 8);
            if (signo == SIGSEGV || signo == SIGBUS || signo == SIGILL || signo == SIGFPE) {
                core.fault_address = load<std::uint64_t>(desc, kSiginfoAddress);
            }
            break;
        }
        case NT_AUXV: parse_auxv(desc, core); break;
        case NT_FILE: parse_file_note(desc, core); break;
        default: break;
    }
}

void parse_notes(std::span<const std::uint8_t> notes, CoreLayout& core) {
    std::size_t at = 0;
    auto align4 = [](std::size_t n) { return (n + 3) & ~std::size_t{3}; };
    while (at + sizeof(Elf64_Nhdr) <= notes.size()) {
        auto header = load<Elf64_Nhdr>(notes, at);
        at += sizeof(Elf64_Nhdr);
        if (header.n_namesz > notes.size() - at) return;
        std::string_view owner(reinterpret_cast<const char*>(notes.data() + at), header.n_namesz);
        if (!owner.empty() && owner.back() == '\0') owner.remove_suffix(1);
        at = align4(at + header.n_namesz);
        if (at > notes.size() || header.n_descsz > notes.size() - at) return;
        parse_note(header.n_type, owner, notes.subspan(at, header.n_descsz), core);
        at = align4(at + header.n_descsz);
    }
}

// A file a core names, opened only when it is a regular file: a path in a hostile core may name a
// FIFO or a device, whose opening could block or act.
FileDescriptor open_regular_file(const std::string& path) {
    FileDescriptor fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY));
    struct stat info {};
    if (fd.get() >= 0 && (::fstat(fd.get(), &info) != 0 || !S_ISREG(info.st_mode))) {
        errno = EINVAL;
        return FileDescriptor();
    }
    return fd;
}

}  // namespace

CoreLayout parse_core(std::span<const std::uint8_t> image, const std::string& name) {
    if (image.size() < sizeof(Elf64_Ehdr) || std::memcmp(image.data(), ELFMAG, SELFMAG) != 0) {
        bad(name, "is not a core file: it is not an ELF file");
    }
    auto header = load<Elf64_Ehdr>(image, 0);
    if (header.e_ident[EI_CLASS] != ELFCLASS64 || header.e_ident[EI_DATA] != ELFDATA2LSB) {
        bad(name, "is not a core file of a 64-bit little-endian program, which is all pysample reads");
    }
    if (header.e_type != ET_CORE)
        bad(name, "is an ELF file but not a core file (e_type " + std::to_string(header.e_type) + ")");
    if (header.e_machine != EM_X86_64) {
        bad(name,
            "is a core file of another architecture (e_machine " + std::to_string(header.e_machine) + "), not x86-64");
    }
    CoreLayout core;
    core.file_size = image.size();
    // More than 65534 mappings: the count is in the first section header (PN_XNUM).
    std::uint64_t count = header.e_phnum;
    if (header.e_phnum == PN_XNUM && header.e_shoff <= image.size() &&
        sizeof(Elf64_Shdr) <= image.size() - header.e_shoff) {
        count = load<Elf64_Shdr>(image, header.e_shoff).sh_info;
    }
    if (header.e_phentsize != sizeof(Elf64_Phdr) || header.e_phoff > image.size() ||
        count > (image.size() - header.e_phoff) / sizeof(Elf64_Phdr)) {
        bad(name, "is truncated or damaged: its program headers (" + std::to_string(count) + " at offset " +
                      std::to_string(header.e_phoff) + ") are not all in its " + std::to_string(image.size()) +
                      " bytes");
    }
    for (std::size_t i = 0; i < count; ++i) {
        auto phdr = load<Elf64_Phdr>(image, header.e_phoff + i * sizeof(Elf64_Phdr));
        std::uint64_t present =
            phdr.p_offset >= image.size() ? 0 : std::min<std::uint64_t>(phdr.p_filesz, image.size() - phdr.p_offset);
        if (phdr.p_type == PT_NOTE) {
            core.has_notes = true;
            parse_notes(image.subspan(phdr.p_offset < image.size() ? phdr.p_offset : image.size(), present), core);
        } else if (phdr.p_type == PT_LOAD && phdr.p_memsz > 0) {
            std::uint64_t filesz = std::min(phdr.p_filesz, phdr.p_memsz);
            core.segments.push_back(
                {phdr.p_vaddr, phdr.p_memsz, phdr.p_offset, filesz, std::min(present, filesz), phdr.p_flags});
            core.missing_bytes += filesz - std::min(present, filesz);
        }
    }
    std::sort(core.segments.begin(), core.segments.end(),
              [](const auto& a, const auto& b) { return a.vaddr < b.vaddr; });
    std::sort(core.files.begin(), core.files.end(), [](const auto& a, const auto& b) { return a.start < b.start; });
    if (!core.has_notes) bad(name, "has no notes: it records no threads or registers");
    if (core.threads.empty()) bad(name, "records no threads (no NT_PRSTATUS note): it is truncated or damaged");
    if (core.pid == 0) core.pid = core.threads.front().tid;
    return core;
}

// Reads the core's own bytes where it holds them, else the mapped file's, through the --root.
class CoreFile::CoreMemory final : public Memory {
public:
    explicit CoreMemory(CoreFile& core) : core_(core) {}

    bool read(std::uint64_t addr, void* dest, std::size_t len) override {
        auto* out = static_cast<std::uint8_t*>(dest);
        while (len > 0) {
            std::size_t done = read_some(addr, out, len);
            if (done == 0) return false;
            addr += done;
            out += done;
            len -= done;
        }
        return true;
    }

private:
    // Copies from the one segment holding `addr`; returns how many bytes it copied.
    std::size_t read_some(std::uint64_t addr, std::uint8_t* out, std::size_t len) {
        const auto& segments = core_.layout_.segments;
        auto it = std::upper_bound(segments.begin(), segments.end(), addr,
                                   [](std::uint64_t a, const CoreLayout::Segment& s) { return a < s.vaddr; });
        // Past every segment that starts at or below it: the file, up to where the next segment starts.
        std::size_t before_next =
            it == segments.end() ? len : static_cast<std::size_t>(std::min<std::uint64_t>(len, it->vaddr - addr));
        if (it == segments.begin()) return read_from_file(addr, out, before_next);
        const auto& segment = *std::prev(it);
        std::uint64_t into = addr - segment.vaddr;
        if (into >= segment.memsz) return read_from_file(addr, out, before_next);
        std::size_t n = static_cast<std::size_t>(std::min<std::uint64_t>(len, segment.memsz - into));
        if (into < segment.filesz) {
            if (into >= segment.present) return 0;  // cut off by a truncated core
            n = static_cast<std::size_t>(std::min<std::uint64_t>(n, segment.present - into));
            std::memcpy(out, core_.image_.data + segment.offset + into, n);
            return n;
        }
        return read_from_file(addr, out, n);
    }

    std::size_t read_from_file(std::uint64_t addr, std::uint8_t* out, std::size_t len) {
        const auto& maps = core_.maps_;
        auto it = std::upper_bound(maps.begin(), maps.end(), addr,
                                   [](std::uint64_t a, const MapEntry& m) { return a < m.start; });
        if (it == maps.begin()) return 0;
        const auto& mapping = *--it;
        if (!mapping.contains(addr) || mapping.path.empty()) return 0;
        int fd = file_fd(mapping);
        if (fd < 0) return 0;
        std::size_t n = static_cast<std::size_t>(std::min<std::uint64_t>(len, mapping.end - addr));
        auto got = ::pread(fd, out, n, static_cast<off_t>(mapping.offset + (addr - mapping.start)));
        return got > 0 ? static_cast<std::size_t>(got) : 0;
    }

    int file_fd(const MapEntry& mapping) {
        auto [it, added] = files_.try_emplace(mapping.path);
        if (added) it->second = open_regular_file(core_.mapped_file(mapping));
        return it->second.get();
    }

    CoreFile& core_;
    std::unordered_map<std::string, FileDescriptor> files_;
};

namespace {

bool is_gzip(int fd) {
    std::array<std::uint8_t, 2> magic{};
    return ::pread(fd, magic.data(), magic.size(), 0) == 2 && magic[0] == 0x1f && magic[1] == 0x8b;
}

// A gzip core is inflated into an anonymous memory file (not a file on disk), then read as a raw one.
FileDescriptor inflate(int fd, const std::string& path) {
    int copy = ::dup(fd);
    gzFile in = copy >= 0 ? ::gzdopen(copy, "rb") : nullptr;
    if (in == nullptr) {
        if (copy >= 0) ::close(copy);
        bad(path, "cannot be opened as gzip");
    }
    FileDescriptor out(::memfd_create("pysample-core", MFD_CLOEXEC));
    if (out.get() < 0) {
        ::gzclose(in);
        throw Error(ErrorKind::Other, "cannot make a memory file to inflate " + path + ": " + std::strerror(errno));
    }
    std::vector<char> buffer(1 << 20);
    bool truncated = false;
    for (;;) {
        int n = ::gzread(in, buffer.data(), static_cast<unsigned>(buffer.size()));
        if (n < 0) {
            truncated = true;
            break;
        }
        if (n == 0) break;
        if (::write(out.get(), buffer.data(), static_cast<std::size_t>(n)) != n) {
            ::gzclose(in);
            throw Error(ErrorKind::Other, "cannot inflate " + path + ": out of memory (" + std::strerror(errno) + ")");
        }
    }
    int error = Z_OK;
    const char* message = ::gzerror(in, &error);
    if (error != Z_OK && error != Z_STREAM_END) truncated = true;
    if (truncated) {
        spdlog::warn("{} is a damaged or truncated gzip stream ({}); reading what inflated", path,
                     message != nullptr ? message : "error");
    }
    ::gzclose(in);
    return out;
}

}  // namespace

CoreFile::CoreFile(const std::string& path, std::string root, std::string executable)
    : path_(path), root_(std::move(root)), executable_override_(std::move(executable)) {
    while (root_.size() > 1 && root_.back() == '/') root_.pop_back();
    if (root_ == "/") root_.clear();
    fd_ = FileDescriptor(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
    if (fd_.get() < 0) {
        throw Error(ErrorKind::BadInput, "cannot open core file " + path + ": " + std::strerror(errno));
    }
    struct stat info {};
    if (::fstat(fd_.get(), &info) != 0 || !S_ISREG(info.st_mode)) bad(path, "is not a regular file");
    if (is_gzip(fd_.get())) {
        compressed_ = true;
        fd_ = inflate(fd_.get(), path);
        if (::fstat(fd_.get(), &info) != 0) bad(path, "could not be inflated");
    }
    auto size = static_cast<std::size_t>(info.st_size);
    if (size == 0) bad(path, "is empty: not a core file");
    // Mapped, not read: only the pages pysample reads are ever loaded.
    void* mapped = ::mmap(nullptr, size, PROT_READ, MAP_PRIVATE, fd_.get(), 0);
    if (mapped == MAP_FAILED) bad(path, std::string("cannot be mapped: ") + std::strerror(errno));
    image_.data = static_cast<const std::uint8_t*>(mapped);
    image_.size = size;
    layout_ = parse_core({image_.data, image_.size}, path);
    if (layout_.missing_bytes > 0) {
        spdlog::warn(
            "{} is truncated: {} bytes of the program's memory are missing from its end; what they held "
            "cannot be read",
            path, layout_.missing_bytes);
    }
    build_maps();
    memory_ = std::make_unique<CoreMemory>(*this);
    check_build_ids();
    number_threads_as_the_program();
}

// Trusted only when every thread has a distinct number of its own: else the core's are kept.
void CoreFile::number_threads_as_the_program() {
    constexpr pid_t kMaxPid = 1 << 22;  // PID_MAX_LIMIT
    bool differ = false;
    for (const auto& thread : layout_.threads) {
        auto own = tid_of_pthread(*memory_, thread.thread_pointer);
        bool distinct = std::none_of(program_tids_.begin(), program_tids_.end(),
                                     [&](const auto& known) { return own && known.first == *own; });
        if (!own || *own > kMaxPid || !distinct) {
            program_tids_.clear();
            return;
        }
        program_tids_.emplace_back(*own, thread.tid);
        differ = differ || *own != thread.tid;
    }
    if (!differ) program_tids_.clear();
    for (const auto& [own, core] : program_tids_) spdlog::debug("{}: thread {} is {} in the program", path_, core, own);
}

bool CoreFile::separate_pid_namespace() { return !program_tids_.empty(); }

pid_t CoreFile::tid_from_program(pid_t inner) {
    if (program_tids_.empty()) return inner;
    for (const auto& [own, core] : program_tids_) {
        if (own == inner) return core;
    }
    return 0;
}

pid_t CoreFile::tid_in_program(pid_t tid) {
    if (program_tids_.empty()) return tid;
    for (const auto& [own, core] : program_tids_) {
        if (core == tid) return own;
    }
    return 0;
}

CoreFile::~CoreFile() = default;

CoreFile::Image::~Image() {
    if (data != nullptr) ::munmap(const_cast<std::uint8_t*>(data), size);
}

Memory& CoreFile::memory() { return *memory_; }

std::unique_ptr<Memory> CoreFile::open_memory() { return std::make_unique<CoreMemory>(*this); }

std::string CoreFile::label() const { return "core file " + path_ + " (process " + std::to_string(layout_.pid) + ")"; }

// One mapping per segment, named after the file NT_FILE says it maps.
void CoreFile::build_maps() {
    for (const auto& segment : layout_.segments) {
        MapEntry entry;
        entry.start = segment.vaddr;
        entry.end = segment.vaddr + segment.memsz;
        entry.perms = {segment.flags & PF_R ? 'r' : '-', segment.flags & PF_W ? 'w' : '-',
                       segment.flags & PF_X ? 'x' : '-', 'p'};
        auto file = std::upper_bound(layout_.files.begin(), layout_.files.end(), entry.start,
                                     [](std::uint64_t a, const CoreLayout::MappedFile& f) { return a < f.start; });
        if (file != layout_.files.begin() && (--file)->end > entry.start) {
            entry.path = file->path;
            entry.offset = file->offset + (entry.start - file->start);
            entry.end = std::min(entry.end, file->end);
        }
        maps_.push_back(std::move(entry));
    }
    // A file mapping the core has no segment for (gcore may leave read-only text out entirely).
    for (const auto& file : layout_.files) {
        bool covered =
            std::any_of(maps_.begin(), maps_.end(), [&](const MapEntry& m) { return m.contains(file.start); });
        if (covered) continue;
        maps_.push_back({file.start, file.end, file.offset, "r--p", file.path});
    }
    std::sort(maps_.begin(), maps_.end(), [](const auto& a, const auto& b) { return a.start < b.start; });
}

std::string CoreFile::executable() {
    for (const auto& file : layout_.files) {
        if (layout_.entry >= file.start && layout_.entry < file.end) return file.path;
    }
    return layout_.files.empty() ? std::string() : layout_.files.front().path;
}

// A kernel core names files as the program saw them (under its root); gcore as gdb saw them.
std::string CoreFile::file_in_root(const std::string& path) {
    if (root_.empty()) return path;
    std::string under_root = root_ + path;
    struct stat info {};
    if (::stat(under_root.c_str(), &info) != 0 && ::stat(path.c_str(), &info) == 0) return path;
    return under_root;
}

std::string CoreFile::mapped_file(const MapEntry& mapping, bool* replaced) {
    if (replaced != nullptr) *replaced = false;
    if (!executable_override_.empty() && mapping.path == executable()) return executable_override_;
    return file_in_root(mapping.path);
}

std::string CoreFile::command_line() { return arguments_from_stack().value_or(layout_.arguments); }

// The kernel starts a program with argc, argv[], envp[] and the auxiliary vector on its stack, and
// NT_AUXV is a copy of that vector: found by it, argv gives every argument, where the core's
// NT_PRPSINFO keeps the first 80 bytes (and gdb's only the program's name).
std::optional<std::string> CoreFile::arguments_from_stack() {
    constexpr std::size_t kMaxArguments = 4096;
    constexpr std::size_t kMaxLength = 64 * 1024;
    if (layout_.auxv.size() < 16) return std::nullopt;
    // The first stack holds the executable's path (AT_EXECFN); the main thread's stack pointer may
    // be on another (a signal handler's).
    const auto* main_thread = thread(layout_.pid);
    std::uint64_t on_stack = layout_.executable_name != 0 ? layout_.executable_name
                             : main_thread != nullptr     ? main_thread->registers.sp()
                                                          : 0;
    const auto* stack = segment_holding(on_stack);
    if (stack == nullptr || on_stack - stack->vaddr >= stack->present) return std::nullopt;
    const std::uint8_t* begin = image_.data + stack->offset;
    const std::uint8_t* end = begin + stack->present;
    std::boyer_moore_horspool_searcher searcher(layout_.auxv.begin(), layout_.auxv.end());
    const std::uint8_t* found = std::search(begin, end, searcher);
    while (found != end && (found - begin) % 8 != 0) found = std::search(found + 1, end, searcher);
    if (found == end) return std::nullopt;
    std::uint64_t at = stack->vaddr + static_cast<std::uint64_t>(found - begin);
    auto word = [&](std::uint64_t address, std::uint64_t& value) {
        return address >= stack->vaddr + 8 && memory_->read_value(address, value);
    };
    std::uint64_t value = 0;
    // envp[]'s terminating NULL, envp[] itself, then argv[]'s NULL.
    at -= 8;
    if (!word(at, value) || value != 0) return std::nullopt;
    for (std::size_t i = 0; i < kMaxArguments * 16; ++i) {
        at -= 8;
        if (!word(at, value)) return std::nullopt;
        if (value == 0) break;
    }
    if (value != 0) return std::nullopt;
    // argv[] backwards, down to argc: the one word that equals the number of pointers above it.
    std::vector<std::uint64_t> argv;
    for (;;) {
        at -= 8;
        if (!word(at, value) || argv.size() > kMaxArguments) return std::nullopt;
        if (value == argv.size()) break;
        argv.push_back(value);
    }
    if (argv.empty()) return std::nullopt;
    std::string line;
    for (auto it = argv.rbegin(); it != argv.rend() && line.size() < kMaxLength; ++it) {
        std::string argument;
        char c = 0;
        for (std::uint64_t p = *it; argument.size() < kMaxLength && memory_->read_value(p, c) && c != 0; ++p) {
            argument += c;
        }
        line += (line.empty() ? "" : " ") + argument;
    }
    return line;
}

std::vector<std::pair<pid_t, char>> CoreFile::threads() {
    std::vector<std::pair<pid_t, char>> out;
    for (const auto& thread : layout_.threads) out.emplace_back(thread.tid, thread_state(thread.tid));
    return out;
}

// A core records no scheduler state: a thread stopped inside a system call was waiting in it.
char CoreFile::thread_state(pid_t tid) {
    const auto* found = thread(tid);
    if (found == nullptr) return '?';
    return found->registers.syscall >= 0 ? 'S' : 'R';
}

std::optional<Registers> CoreFile::registers(pid_t tid) {
    const auto* found = thread(tid);
    if (found == nullptr) return std::nullopt;
    return found->registers;
}

const CoreLayout::Segment* CoreFile::segment_holding(std::uint64_t address) const {
    const auto& segments = layout_.segments;
    auto it = std::upper_bound(segments.begin(), segments.end(), address,
                               [](std::uint64_t a, const CoreLayout::Segment& s) { return a < s.vaddr; });
    if (it == segments.begin()) return nullptr;
    --it;
    return address - it->vaddr < it->memsz ? &*it : nullptr;
}

bool CoreFile::stack_zeroed(pid_t tid) {
    const auto* found = thread(tid);
    if (found == nullptr) return false;
    constexpr std::uint64_t kPage = 4096;
    std::array<std::uint8_t, kPage> page{};
    std::uint64_t start = found->registers.sp() & ~(kPage - 1);
    if (!memory_->read(start, page.data(), page.size())) return false;
    return std::all_of(page.begin(), page.end(), [](std::uint8_t byte) { return byte == 0; });
}

const CoreLayout::Thread* CoreFile::thread(pid_t tid) const {
    for (const auto& thread : layout_.threads) {
        if (thread.tid == tid) return &thread;
    }
    return nullptr;
}

namespace {

// The GNU build id of an ELF image whose first `size` bytes `read(offset, dest, len)` gives.
template <typename Reader>
std::string build_id_of(Reader&& read) {
    Elf64_Ehdr header{};
    if (!read(0, &header, sizeof(header)) || std::memcmp(header.e_ident, ELFMAG, SELFMAG) != 0) return {};
    for (std::size_t i = 0; i < header.e_phnum && i < 64; ++i) {
        Elf64_Phdr phdr{};
        if (!read(header.e_phoff + i * sizeof(phdr), &phdr, sizeof(phdr))) return {};
        if (phdr.p_type != PT_NOTE || phdr.p_filesz > 4096) continue;
        std::vector<std::uint8_t> notes(phdr.p_filesz);
        if (!read(phdr.p_offset, notes.data(), notes.size())) continue;
        std::size_t at = 0;
        while (at + sizeof(Elf64_Nhdr) <= notes.size()) {
            auto note = load<Elf64_Nhdr>(notes, at);
            at += sizeof(Elf64_Nhdr);
            std::size_t desc = at + ((note.n_namesz + 3) & ~3U);
            if (desc > notes.size() || note.n_descsz > notes.size() - desc) break;
            if (note.n_type == NT_GNU_BUILD_ID && note.n_namesz == 4 && std::memcmp(notes.data() + at, "GNU", 4) == 0) {
                std::string hex;
                for (std::size_t k = 0; k < note.n_descsz; ++k) hex += fmt::format("{:02x}", notes[desc + k]);
                return hex;
            }
            at = desc + ((note.n_descsz + 3) & ~3U);
        }
    }
    return {};
}

}  // namespace

// The core holds the first page of every mapped ELF file (the kernel's default coredump_filter
// keeps ELF headers): the build id there is the one of the file the program ran.
void CoreFile::check_build_ids() {
    std::vector<std::string> seen;
    std::vector<std::string> missing;
    for (const auto& mapping : maps_) {
        if (mapping.path.empty() || mapping.offset != 0 ||
            std::find(seen.begin(), seen.end(), mapping.path) != seen.end()) {
            continue;
        }
        seen.push_back(mapping.path);
        std::string local = mapped_file(mapping);
        FileDescriptor file = open_regular_file(local);
        if (file.get() < 0) {
            missing.push_back(local);
            continue;
        }
        std::uint64_t start = mapping.start;
        std::uint64_t size = mapping.end - mapping.start;
        std::string recorded = build_id_of([&](std::uint64_t offset, void* dest, std::size_t len) {
            if (offset > size || len > size - offset) return false;
            // Only what the core itself holds counts: reading the file would compare it with itself.
            const auto* segment = segment_holding(start + offset);
            if (segment == nullptr) return false;
            std::uint64_t into = start + offset - segment->vaddr;
            if (into >= segment->present || len > segment->present - into) return false;
            std::memcpy(dest, image_.data + segment->offset + into, len);
            return true;
        });
        if (recorded.empty()) continue;
        std::string actual = build_id_of([&](std::uint64_t offset, void* dest, std::size_t len) {
            return ::pread(file.get(), dest, len, static_cast<off_t>(offset)) == static_cast<ssize_t>(len);
        });
        if (actual != recorded) {
            file_warnings_.push_back(local + " is not the file the program mapped as " + mapping.path +
                                     ": its build id is " + (actual.empty() ? "missing" : actual) + ", the core's " +
                                     recorded + "; what is read from it may be wrong");
        }
    }
    if (!missing.empty()) {
        constexpr std::size_t kNamed = 3;
        std::string names;
        for (std::size_t i = 0; i < missing.size() && i < kNamed; ++i) names += (i > 0 ? ", " : "") + missing[i];
        if (missing.size() > kNamed) names += " and " + std::to_string(missing.size() - kNamed) + " more";
        file_warnings_.insert(file_warnings_.begin(),
                              std::to_string(missing.size()) + " of the files the core maps cannot be opened (" +
                                  names + "): what only they hold is unreadable" +
                                  (root_.empty() ? "; if the core comes from a container or another machine, pass "
                                                   "--root DIR where its files are"
                                                 : ""));
    }
    for (const auto& warning : file_warnings_) spdlog::warn("{}", warning);
}

std::string signal_name(int signal) {
    if (const char* abbrev = ::sigabbrev_np(signal)) return std::string("SIG") + abbrev;
    return "signal " + std::to_string(signal);
}

}  // namespace pysample::attach
