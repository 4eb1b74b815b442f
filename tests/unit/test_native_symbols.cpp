#include <dlfcn.h>
#include <doctest/doctest.h>
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <string>

#include "attach/live_process.hpp"
#include "symbolize/native_symbols.hpp"

using namespace pysample;

namespace probe {

int twice_line = 0;

template <typename T>
struct Box {
    __attribute__((noinline)) static int twice(T value);
};

template <typename T>
int Box<T>::twice(T value) {
    twice_line = __LINE__;
    return static_cast<int>(value) * 2;
}

template struct Box<int>;

int inlined_call_line = 0;

static inline __attribute__((always_inline)) int inlined_helper(int x) {
    int sum = 0;
    for (int i = 0; i < x; ++i) sum += (i * x) ^ (sum >> 3);
    return sum;
}

constexpr int outer_first_line = __LINE__ + 1;
__attribute__((noinline)) int outer_with_inline(int x) {
    inlined_call_line = __LINE__ + 1;
    int sum = inlined_helper(x);
    return sum + 1;
}
constexpr int outer_last_line = __LINE__ - 1;

}  // namespace probe

namespace {

std::string self_name() { return std::filesystem::read_symlink("/proc/self/exe").filename().string(); }

// libc's own qsort: in a sanitizer build ::qsort is the sanitizer runtime's interceptor.
std::uint64_t libc_qsort() {
    void* libc = ::dlopen("libc.so.6", RTLD_NOW | RTLD_NOLOAD);
    REQUIRE(libc != nullptr);
    void* qsort = ::dlsym(libc, "qsort");
    ::dlclose(libc);
    REQUIRE(qsort != nullptr);
    return reinterpret_cast<std::uintptr_t>(qsort);
}

class TempDir {
public:
    TempDir() {
        std::string pattern = (std::filesystem::temp_directory_path() / "pysample-native-XXXXXX").string();
        REQUIRE(::mkdtemp(pattern.data()) != nullptr);
        path_ = pattern;
    }
    ~TempDir() {
        std::error_code ignored;
        std::filesystem::remove_all(path_, ignored);
    }
    TempDir(const TempDir&) = delete;
    TempDir& operator=(const TempDir&) = delete;
    const std::filesystem::path& path() const { return path_; }

private:
    std::filesystem::path path_;
};

class Library {
public:
    explicit Library(const std::string& path) : handle_(::dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL)) {}
    ~Library() {
        if (handle_ != nullptr) ::dlclose(handle_);
    }
    Library(const Library&) = delete;
    Library& operator=(const Library&) = delete;
    void* handle() const { return handle_; }

private:
    void* handle_;
};

}  // namespace

TEST_CASE("a function template of this binary is named, demangled, with its source line") {
    REQUIRE(probe::Box<int>::twice(21) == 42);
    auto address = reinterpret_cast<std::uintptr_t>(&probe::Box<int>::twice);
    attach::LiveProcess self(::getpid());
    symbolize::ModuleMap modules(self);
    symbolize::NativeSymbolizer symbolizer(modules);

    const auto& info = symbolizer.lookup(address);
    CHECK(info.function == "probe::Box<int>::twice(int)");
    CHECK(info.module == self_name());
    const auto* module = modules.find(address);
    REQUIRE(module != nullptr);
    CHECK(info.module_path == module->path);
    CHECK(info.module_offset == address - module->start);
    CHECK(info.source_file.ends_with("test_native_symbols.cpp"));
    // The entry may be attributed to the line that opens the body or to its first statement.
    CHECK((info.line == probe::twice_line || info.line == probe::twice_line - 1));

    const auto& inside = symbolizer.lookup(address + 1);
    CHECK(inside.function == "probe::Box<int>::twice(int)");
    CHECK(inside.module_offset == address - module->start);
    CHECK(&symbolizer.lookup(address + 1) == &inside);
}

TEST_CASE("code inlined into a function is attributed to the call in that function") {
    volatile int input = 7;
    REQUIRE(probe::outer_with_inline(input) > 0);
    auto start = reinterpret_cast<std::uintptr_t>(&probe::outer_with_inline);
    attach::LiveProcess self(::getpid());
    symbolize::ModuleMap modules(self);
    symbolize::NativeSymbolizer symbolizer(modules);

    constexpr std::uintptr_t kMaxBytes = 256;
    std::uintptr_t covered = 0;
    bool call_line_seen = false;
    for (; covered < kMaxBytes; ++covered) {
        const auto& info = symbolizer.lookup(start + covered);
        if (info.function != "probe::outer_with_inline(int)") break;
        INFO("outer_with_inline+" << covered << " is at " << info.source_file << ":" << info.line);
        CHECK(info.source_file.ends_with("test_native_symbols.cpp"));
        CHECK(info.line >= probe::outer_first_line);
        CHECK(info.line <= probe::outer_last_line);
        call_line_seen = call_line_seen || info.line == probe::inlined_call_line;
    }
    CHECK(covered > 0);
    CHECK(call_line_seen);
}

TEST_CASE("a libc function is named from libc, with source lines when its debug file is installed") {
    auto address = libc_qsort();
    attach::LiveProcess self(::getpid());
    symbolize::ModuleMap modules(self);
    symbolize::NativeSymbolizer symbolizer(modules);
    const auto* module = modules.find(address);
    REQUIRE(module != nullptr);

    const auto& info = symbolizer.lookup(address);
    CHECK(info.function == "qsort");
    CHECK(info.module == "libc.so.6");
    CHECK(info.module_offset == address - module->start);

    REQUIRE(module->elf != nullptr);
    std::string build_id = module->elf->build_id();
    std::string debug_file = "/usr/lib/debug/.build-id/" + build_id.substr(0, 2) + "/" + build_id.substr(2) + ".debug";
    if (build_id.size() < 3 || !std::filesystem::exists(debug_file)) {
        MESSAGE("no debug file for libc at " << debug_file << ": source lines not checked");
        return;
    }
    const auto& inside = symbolizer.lookup(address + 1);
    CHECK(inside.function == "qsort");
    CHECK(inside.module_offset == address - module->start);
    CHECK_FALSE(inside.source_file.empty());
    CHECK(inside.line > 0);
    MESSAGE("qsort+1 is at " << inside.source_file << ":" << inside.line);
}

TEST_CASE("an address outside every mapped file has no function and no module") {
    attach::LiveProcess self(::getpid());
    symbolize::ModuleMap modules(self);
    symbolize::NativeSymbolizer symbolizer(modules);
    const auto& info = symbolizer.lookup(0x10);
    CHECK(info.function.empty());
    CHECK(info.module.empty());
    CHECK(info.source_file.empty());
    CHECK(info.line == 0);
}

TEST_CASE("a stripped library is named from .dynsym") {
    const std::filesystem::path original = "/lib/x86_64-linux-gnu/libz.so.1";
    if (!std::filesystem::exists(original) || std::system("command -v strip >/dev/null 2>&1") != 0) {
        MESSAGE("strip or " << original << " is not available: stripped library not checked");
        return;
    }
    TempDir dir;
    auto copy = dir.path() / "libz.so.1";
    std::filesystem::copy_file(original, copy);
    REQUIRE(std::system(("strip --strip-all '" + copy.string() + "'").c_str()) == 0);
    CHECK_FALSE(symbolize::ElfFile(copy.string()).has_symtab());

    Library library(copy.string());
    REQUIRE(library.handle() != nullptr);
    auto address = reinterpret_cast<std::uintptr_t>(::dlsym(library.handle(), "deflate"));
    REQUIRE(address != 0);
    attach::LiveProcess self(::getpid());
    symbolize::ModuleMap modules(self);
    symbolize::NativeSymbolizer symbolizer(modules);

    const auto& info = symbolizer.lookup(address + 1);
    CHECK(info.function == "deflate");
    CHECK(info.module == "libz.so.1");
    CHECK(info.module_path == copy.string());
}
