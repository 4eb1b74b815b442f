#include <doctest/doctest.h>
#include <unistd.h>

#include "python_process.hpp"

using namespace pysample::sampler;

TEST_CASE("versions are read from file names of executables and libraries") {
    auto lib = version_from_file_name("/root/.pyenv/versions/3.9.18/lib/libpython3.9.so.1.0");
    REQUIRE(lib);
    CHECK(lib->major == 3);
    CHECK(lib->minor == 9);
    auto exe = version_from_file_name("/usr/bin/python3.11");
    REQUIRE(exe);
    CHECK(exe->minor == 11);
    auto debug = version_from_file_name("/usr/bin/python3.13d");
    REQUIRE(debug);
    CHECK(debug->minor == 13);
    CHECK_FALSE(version_from_file_name("/usr/bin/python3"));
    CHECK_FALSE(version_from_file_name("/usr/bin/bash"));
}

TEST_CASE("version text parses with and without micro") {
    auto full = parse_version_text("3.12.1");
    REQUIRE(full);
    CHECK(full->micro == 1);
    auto short_form = parse_version_text("3.8");
    REQUIRE(short_form);
    CHECK(short_form->minor == 8);
    CHECK(short_form->micro == -1);
    CHECK_FALSE(parse_version_text("x.y"));
}

TEST_CASE("the version literal is found in the read-only data of real interpreter binaries") {
    const std::pair<const char*, std::pair<int, int>> binaries[] = {
        {"/usr/bin/python3.11", {3, 11}},
        {"/root/.pyenv/versions/3.8.18/lib/libpython3.8.so.1.0", {3, 8}},
        {"/root/.pyenv/versions/3.10.13/lib/libpython3.10.so.1.0", {3, 10}},
        {"/root/.pyenv/versions/3.13.0/lib/libpython3.13.so.1.0", {3, 13}},
    };
    int checked = 0;
    for (const auto& [path, version] : binaries) {
        if (::access(path, R_OK) != 0) {
            MESSAGE("skipped (not installed): " << path);
            continue;
        }
        pysample::symbolize::ElfFile elf(path);
        auto found = version_strings_in(elf);
        INFO(std::string(path));
        CHECK(found.count(version) == 1);
        ++checked;
    }
    if (checked == 0) MESSAGE("no interpreter binary found to check");
}
