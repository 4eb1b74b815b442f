#include <doctest/doctest.h>
#include <unistd.h>

#include "attach/maps.hpp"
#include "symbolize/elf.hpp"

using namespace pysample;

extern "C" __attribute__((noinline, used)) int pysample_unit_probe(int x) { return x * 3 + 1; }
extern "C" {
__attribute__((used)) int pysample_unit_global = 42;
}

namespace {

std::string self_path() {
    char buf[4096];
    ssize_t n = ::readlink("/proc/self/exe", buf, sizeof(buf) - 1);
    REQUIRE(n > 0);
    return std::string(buf, static_cast<std::size_t>(n));
}

}  // namespace

TEST_CASE("symbols of the running executable resolve to their runtime addresses with the load bias") {
    std::string path = self_path();
    symbolize::ElfFile elf(path);
    auto maps = attach::read_maps(::getpid());
    const auto* lowest = attach::first_mapping_of(maps, path);
    REQUIRE(lowest != nullptr);
    std::uint64_t bias = elf.load_bias(*lowest);

    auto function = elf.symbol("pysample_unit_probe");
    REQUIRE(function);
    CHECK(bias + *function == reinterpret_cast<std::uint64_t>(&pysample_unit_probe));
    auto global = elf.symbol("pysample_unit_global");
    REQUIRE(global);
    CHECK(bias + *global == reinterpret_cast<std::uint64_t>(&pysample_unit_global));
    CHECK_FALSE(elf.symbol("no_such_symbol_anywhere"));
    REQUIRE(elf.section(".text") != nullptr);
    CHECK(elf.section(".text")->size > 0);
    CHECK_FALSE(elf.load_segments().empty());
}

TEST_CASE("exported symbols found through .gnu.hash match the full symbol index") {
    // libc: a large library with .gnu.hash. A miss first builds the full index for the second file.
    auto maps = attach::read_maps(::getpid());
    std::string libc;
    for (const auto& entry : maps) {
        if (entry.path.find("/libc.so") != std::string::npos) libc = entry.path;
    }
    REQUIRE_FALSE(libc.empty());
    symbolize::ElfFile hashed(libc);
    symbolize::ElfFile indexed(libc);
    CHECK_FALSE(indexed.symbol("no_such_symbol_anywhere"));
    for (const char* name : {"malloc", "printf", "process_vm_readv", "environ"}) {
        CAPTURE(name);
        auto fast = hashed.symbol(name);
        REQUIRE(fast);
        CHECK(fast == indexed.symbol(name));
    }
}

TEST_CASE("a non-ELF file is refused with its path in the message") {
    CHECK_THROWS_WITH_AS(symbolize::ElfFile("/proc/self/status"), doctest::Contains("/proc/self/status"),
                         std::runtime_error);
    CHECK_THROWS_AS(symbolize::ElfFile("/nonexistent/file"), std::runtime_error);
}

TEST_CASE("3.14+ interpreters put _PyRuntime alone in the .PyRuntime section") {
    const char* binaries[] = {"/var/cache/pysample/sid/usr/bin/python3.14",
                              "/var/cache/pysample/sid/usr/bin/python3.15"};
    for (const char* path : binaries) {
        if (::access(path, R_OK) != 0) {
            MESSAGE("skipped (scripts/get-pythons not run): " << path);
            continue;
        }
        symbolize::ElfFile elf(path);
        const auto* section = elf.section(".PyRuntime");
        REQUIRE(section != nullptr);
        auto symbol = elf.symbol("_PyRuntime");
        REQUIRE(symbol);
        CHECK(section->addr == *symbol);
        CHECK_FALSE(elf.position_independent());  // sid builds these executables without PIE
    }
}
