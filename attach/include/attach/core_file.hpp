// A core file (from the kernel or gdb's gcore, raw or gzip-compressed) as a Target: the memory the
// core holds, the rest read from the files it mapped, and each thread's registers.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "attach/file_descriptor.hpp"
#include "attach/target.hpp"

namespace pysample::attach {

// What the core's headers and notes say, parsed without touching the memory it holds.
struct CoreLayout {
    struct Segment {
        std::uint64_t vaddr = 0;
        std::uint64_t memsz = 0;
        std::uint64_t offset = 0;   // in the core file
        std::uint64_t filesz = 0;   // bytes of it in the core (0: left out, e.g. read-only file text)
        std::uint64_t present = 0;  // of those, how many the file really has (less when truncated)
        std::uint32_t flags = 0;    // PF_R, PF_W, PF_X
    };
    struct MappedFile {
        std::uint64_t start = 0;
        std::uint64_t end = 0;
        std::uint64_t offset = 0;  // in the file, in bytes
        std::string path;
    };
    struct Thread {
        pid_t tid = 0;
        int signal = 0;  // pr_cursig: the signal it was handling
        Registers registers;
        std::uint64_t thread_pointer = 0;  // fs_base: glibc's struct pthread of the thread
    };
    std::vector<Segment> segments;  // sorted by address
    std::vector<MappedFile> files;  // NT_FILE
    std::vector<Thread> threads;    // the first is the thread that made the core
    pid_t pid = 0;
    std::string program_name;   // pr_fname, up to 16 bytes
    std::string arguments;      // pr_psargs: the command line, up to 80 bytes
    std::optional<int> signal;  // NT_SIGINFO: what ended the process
    std::int32_t signal_code = 0;
    std::optional<std::uint64_t> fault_address;  // for SIGSEGV, SIGBUS, SIGILL, SIGFPE
    std::uint64_t executable_name = 0;           // AT_EXECFN: the address of its path, on the first stack
    std::uint64_t entry = 0;                     // AT_ENTRY: the executable's entry point
    std::vector<std::uint8_t> auxv;              // NT_AUXV: a copy of the auxiliary vector on the first stack
    std::uint64_t file_size = 0;
    std::uint64_t missing_bytes = 0;  // of segments cut off by a truncated file
    bool has_notes = false;
};

// Parses a core's ELF headers and notes; throws attach::Error (BadInput) saying what is wrong.
CoreLayout parse_core(std::span<const std::uint8_t> image, const std::string& name);

class CoreFile final : public Target {
public:
    // `root`: the directory the program's files are looked up under (a container's or another
    // machine's root), empty for "/". `executable`: where the program's executable is, when not
    // at its recorded path. Throws attach::Error (BadInput, NoSuchProcess when the file is missing).
    CoreFile(const std::string& path, std::string root = {}, std::string executable = {});
    ~CoreFile() override;
    CoreFile(const CoreFile&) = delete;
    CoreFile& operator=(const CoreFile&) = delete;

    const CoreLayout& layout() const { return layout_; }
    const std::string& path() const { return path_; }
    bool compressed() const { return compressed_; }
    // Files of the core's mappings that could not be opened, or whose build id differs from the one
    // the core recorded: one sentence each.
    const std::vector<std::string>& file_warnings() const { return file_warnings_; }
    // The core holds only zeros where the thread's stack pointer points: whoever wrote it left the
    // stack out (gdb's gcore does so for stacks with guard pages, as glibc 2.41+ makes them).
    bool stack_zeroed(pid_t tid);

    pid_t pid() const override { return layout_.pid; }
    std::string label() const override;
    bool live() const override { return false; }
    Memory& memory() override;
    std::unique_ptr<Memory> open_memory() override;
    std::vector<MapEntry> maps() override { return maps_; }
    std::string mapped_file(const MapEntry& mapping, bool* replaced = nullptr) override;
    std::string file_in_root(const std::string& path) override;
    std::string command_line() override;
    std::string executable() override;
    std::vector<std::pair<pid_t, char>> threads() override;
    char thread_state(pid_t tid) override;
    std::string thread_name(pid_t) override { return {}; }
    std::optional<CpuTimes> cpu_times(pid_t) override { return std::nullopt; }
    std::optional<Registers> registers(pid_t tid) override;
    // A core from the kernel numbers threads as the program did; gdb's gcore as gdb saw them, in
    // its own PID namespace. Each thread's struct pthread (its thread pointer) says its own number.
    bool separate_pid_namespace() override;
    pid_t tid_from_program(pid_t inner) override;
    pid_t tid_in_program(pid_t tid) override;

    class CoreMemory;

private:
    void build_maps();
    void check_build_ids();
    std::optional<std::string> arguments_from_stack();
    void number_threads_as_the_program();
    const CoreLayout::Thread* thread(pid_t tid) const;
    // The segment whose addresses hold `address` (its bytes may be left out of the core), or null.
    const CoreLayout::Segment* segment_holding(std::uint64_t address) const;

    std::string path_;
    std::string root_;
    std::string executable_override_;
    bool compressed_ = false;
    FileDescriptor fd_;
    // The core's bytes, mapped read-only; unmapped however the constructor or the object ends.
    struct Image {
        const std::uint8_t* data = nullptr;
        std::size_t size = 0;
        Image() = default;
        Image(const Image&) = delete;
        Image& operator=(const Image&) = delete;
        ~Image();
    };
    Image image_;
    CoreLayout layout_;
    std::vector<MapEntry> maps_;
    std::unique_ptr<CoreMemory> memory_;
    std::vector<std::string> file_warnings_;
    std::vector<std::pair<pid_t, pid_t>> program_tids_;  // (the program's number, the core's), when they differ
};

// The name of a signal ("SIGSEGV"), or "signal N".
std::string signal_name(int signal);

}  // namespace pysample::attach
