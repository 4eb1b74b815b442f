#include <doctest/doctest.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <array>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "attach/core_file.hpp"
#include "attach/error.hpp"
#include "symbolize/modules.hpp"
#include "symbolize/native_symbols.hpp"
#include "symbolize/native_unwind.hpp"

namespace {

using namespace pysample;
namespace fs = std::filesystem;

// Under AddressSanitizer a process reserves terabytes of address space: a core of it takes long to
// write. The plain build runs these tests.
#if defined(__SANITIZE_ADDRESS__)
constexpr bool kSanitized = true;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
constexpr bool kSanitized = true;
#else
constexpr bool kSanitized = false;
#endif
#else
constexpr bool kSanitized = false;
#endif

bool skip_when_sanitized() {
    if (kSanitized) MESSAGE("skipped under AddressSanitizer (the plain build runs it): cores of it are huge");
    return kSanitized;
}

// Written by the child before it is dumped: the core must hold these bytes at this address.
std::array<char, 4096> core_probe_data{};

extern "C" __attribute__((noinline)) void core_probe_leaf() {
    for (;;) ::pause();
}

extern "C" __attribute__((noinline)) void core_probe_outer() {
    core_probe_leaf();
    asm volatile("");  // keeps the call from becoming a tail call
}

void fill_probe() {
    for (std::size_t i = 0; i < core_probe_data.size(); ++i) core_probe_data[i] = static_cast<char>('a' + i % 26);
}

// A child with a second thread, parked in a known call chain; gcore'd into a directory of its own.
class DumpedChild {
public:
    DumpedChild() : dir_(fs::temp_directory_path() / ("pysample-core-test-" + std::to_string(::getpid()))) {
        fs::create_directories(dir_);
        pid_ = ::fork();
        if (pid_ == 0) {
            fill_probe();
            std::thread([] {
                for (;;) ::pause();
            }).detach();
            core_probe_outer();
            ::_exit(0);
        }
        ::usleep(200'000);
        std::string command = "gcore -o " + (dir_ / "core").string() + " " + std::to_string(pid_) + " >/dev/null 2>&1";
        made_ = std::system(command.c_str()) == 0 && fs::exists(path());
        if (!made_) MESSAGE("skipped: gcore (Debian's gdb) is not installed or could not dump a child");
    }
    ~DumpedChild() {
        ::kill(pid_, SIGKILL);
        ::waitpid(pid_, nullptr, 0);
        std::error_code ignored;
        fs::remove_all(dir_, ignored);
    }
    bool made() const { return made_; }
    pid_t pid() const { return pid_; }
    std::string path() const { return (dir_ / ("core." + std::to_string(pid_))).string(); }
    std::string sibling(const std::string& name) const { return (dir_ / name).string(); }

private:
    fs::path dir_;
    pid_t pid_ = 0;
    bool made_ = false;
};

std::vector<char> read_bytes(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

void write_bytes(const std::string& path, const char* data, std::size_t size) {
    std::ofstream out(path, std::ios::binary);
    out.write(data, static_cast<std::streamsize>(size));
}

void check_probe(attach::Memory& memory) {
    std::array<char, 4096> copy{};
    REQUIRE(memory.read(reinterpret_cast<std::uint64_t>(core_probe_data.data()), copy.data(), copy.size()));
    fill_probe();
    CHECK(std::memcmp(copy.data(), core_probe_data.data(), copy.size()) == 0);
    core_probe_data.fill(0);
}

attach::ErrorKind error_kind_opening(const std::string& path) {
    try {
        attach::CoreFile core(path);
    } catch (const attach::Error& e) {
        return e.kind();
    }
    return attach::ErrorKind::Other;
}

}  // namespace

TEST_CASE("a gcore core file gives the program's memory, files, threads and registers") {
    if (skip_when_sanitized()) return;
    DumpedChild child;
    if (!child.made()) return;
    attach::CoreFile core(child.path());
    CHECK(core.pid() == child.pid());
    CHECK_FALSE(core.live());
    CHECK_FALSE(core.compressed());
    CHECK(core.threads().size() == 2);
    auto registers = core.registers(child.pid());
    REQUIRE(registers.has_value());
    CHECK(registers->pc() != 0);
    // The child is a fork of this process: its data lies at the same addresses.
    check_probe(core.memory());
    // Code: from the core where it holds it, else from the executable it names.
    auto code = reinterpret_cast<std::uint64_t>(&core_probe_outer);
    std::array<std::uint8_t, 16> bytes{};
    REQUIRE(core.memory().read(code, bytes.data(), bytes.size()));
    CHECK(std::memcmp(bytes.data(), reinterpret_cast<const void*>(code), bytes.size()) == 0);
    CHECK(fs::equivalent(core.executable(), "/proc/self/exe"));
    // The child's arguments are this process's, read from its first stack.
    auto own = read_bytes("/proc/self/cmdline");
    while (!own.empty() && own.back() == '\0') own.pop_back();
    std::replace(own.begin(), own.end(), '\0', ' ');
    CHECK(core.command_line() == std::string(own.begin(), own.end()));
    CHECK(core.file_warnings().empty());

    // Native stacks unwind from the recorded registers, without ptrace.
    symbolize::ModuleMap modules(core);
    symbolize::NativeUnwinder unwinder(modules, core.memory());
    symbolize::NativeSymbolizer symbols(modules);
    std::vector<std::uint64_t> pcs;
    unwinder.unwind(*registers, {}, pcs);
    std::vector<std::string> names;
    for (std::size_t i = 0; i < pcs.size(); ++i) names.push_back(symbols.lookup(i == 0 ? pcs[i] : pcs[i] - 1).function);
    CHECK(std::find(names.begin(), names.end(), "core_probe_leaf") != names.end());
    CHECK(std::find(names.begin(), names.end(), "core_probe_outer") != names.end());
}

TEST_CASE("a gzip-compressed core reads as the raw one; a gcore cut short is refused") {
    if (skip_when_sanitized()) return;
    DumpedChild child;
    if (!child.made()) return;
    auto raw = read_bytes(child.path());
    std::string gz = child.sibling("core.gz");
    gzFile out = ::gzopen(gz.c_str(), "wb1");
    REQUIRE(out != nullptr);
    REQUIRE(::gzwrite(out, raw.data(), static_cast<unsigned>(raw.size())) == static_cast<int>(raw.size()));
    ::gzclose(out);
    {
        attach::CoreFile core(gz);
        CHECK(core.compressed());
        CHECK(core.pid() == child.pid());
        check_probe(core.memory());
    }
    // gcore writes its notes last: a cut core has lost its threads.
    std::string cut = child.sibling("core.cut");
    write_bytes(cut, raw.data(), raw.size() / 2);
    CHECK(error_kind_opening(cut) == attach::ErrorKind::BadInput);
}

TEST_CASE("a kernel core cut short keeps its threads and reads the memory it still holds") {
    if (skip_when_sanitized()) return;
    std::string dir = (fs::temp_directory_path() / ("pysample-kcore-" + std::to_string(::getpid()))).string();
    fs::create_directories(dir);
    pid_t pid = ::fork();
    if (pid == 0) {
        if (::chdir(dir.c_str()) != 0) ::_exit(1);
        struct rlimit limit {
            RLIM_INFINITY, RLIM_INFINITY
        };
        ::setrlimit(RLIMIT_CORE, &limit);
        fill_probe();
        ::abort();
    }
    int status = 0;
    ::waitpid(pid, &status, 0);
    std::string path;
    for (const auto& entry : fs::directory_iterator(dir)) {
        if (entry.path().filename().string().rfind("core", 0) == 0) path = entry.path().string();
    }
    if (!WCOREDUMP(status) || path.empty()) {
        MESSAGE(
            "skipped: the kernel wrote no core here (a core size limit that cannot be raised, as under "
            "AddressSanitizer, or a kernel.core_pattern that sends cores elsewhere)");
        fs::remove_all(dir);
        return;
    }
    {
        attach::CoreFile core(path);
        CHECK(core.pid() == pid);
        CHECK(core.layout().signal == SIGABRT);
        check_probe(core.memory());
    }
    auto raw = read_bytes(path);
    attach::CoreFile whole(path);
    const auto& last = whole.layout().segments.back();
    std::string cut = dir + "/cut";
    write_bytes(cut, raw.data(), static_cast<std::size_t>(last.offset + last.filesz / 2));
    attach::CoreFile truncated(cut);
    CHECK(truncated.layout().missing_bytes == last.filesz - last.filesz / 2);
    CHECK(truncated.threads().size() == 1);
    std::uint8_t byte = 0;
    CHECK_FALSE(truncated.memory().read(last.vaddr + last.filesz - 1, &byte, 1));
    check_probe(truncated.memory());
    fs::remove_all(dir);
}

TEST_CASE("files that are not cores are refused as bad input, saying why") {
    std::string dir = (fs::temp_directory_path() / ("pysample-notcore-" + std::to_string(::getpid()))).string();
    fs::create_directories(dir);
    std::string exe = dir + "/exe";
    fs::copy_file("/proc/self/exe", exe, fs::copy_options::overwrite_existing);
    std::string empty = dir + "/empty";
    write_bytes(empty, "", 0);
    std::string text = dir + "/text";
    write_bytes(text, "hello, world\n", 13);
    for (const auto& path : {exe, empty, text}) {
        CAPTURE(path);
        CHECK(error_kind_opening(path) == attach::ErrorKind::BadInput);
    }
    try {
        attach::CoreFile core(exe);
    } catch (const attach::Error& e) {
        CHECK(std::string(e.what()).find("not a core file") != std::string::npos);
    }
    CHECK(error_kind_opening(dir + "/missing") == attach::ErrorKind::BadInput);
    fs::remove_all(dir);
}
