#include <doctest/doctest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <csignal>
#include <cstring>
#include <string>
#include <thread>

#include "model/debug_offsets.hpp"
#include "model/python_process.hpp"

using namespace pysample::sampler;

namespace {

// 3.14's struct as words, filled from pysample's own table at the positions 3.14 uses.
std::vector<std::uint64_t> words_for_314(const PythonLayout& l) {
    std::vector<std::uint64_t> words(95, 0);
    std::memcpy(words.data(), "xdebugpy", 8);
    words[1] = 0x030e0af0;
    words[5] = static_cast<std::uint64_t>(l.runtime_interpreters_head);
    words[8] = static_cast<std::uint64_t>(l.interp_next);
    words[9] = static_cast<std::uint64_t>(l.interp_threads_head);
    const std::pair<int, std::int64_t> fields[] = {
        {22, l.tstate_size},    {24, l.tstate_next},        {25, l.tstate_interp},
        {26, l.tstate_frame},   {27, l.tstate_thread_id},   {28, l.tstate_native_thread_id},
        {31, l.iframe_size},    {32, l.iframe_previous},    {33, l.iframe_code},
        {34, l.iframe_instr},   {36, l.iframe_owner},       {39, l.code_size},
        {40, l.code_filename},  {41, l.code_name},          {42, l.code_qualname},
        {43, l.code_linetable}, {44, l.code_firstlineno},   {48, l.code_adaptive},
        {75, l.bytes_size},     {76, l.bytes_data},         {78, l.unicode_state},
        {79, l.unicode_length}, {80, l.unicode_ascii_data},
    };
    for (auto [index, value] : fields) words[static_cast<std::size_t>(index)] = static_cast<std::uint64_t>(value);
    return words;
}

}  // namespace

TEST_CASE("debug offsets need their cookie and carry version and free-threading") {
    std::vector<std::uint64_t> words(95, 0);
    CHECK_FALSE(parse_debug_offsets(words));
    std::memcpy(words.data(), "xdebugpy", 8);
    words[1] = 0x030e0af0;
    words[2] = 1;
    auto offsets = parse_debug_offsets(words);
    REQUIRE(offsets);
    CHECK(offsets->major() == 3);
    CHECK(offsets->minor() == 14);
    CHECK(offsets->free_threaded);
}

TEST_CASE("published offsets that agree leave the table alone; differing ones replace it and are reported") {
    PythonLayout layout = *find_layout(3, 14);
    auto words = words_for_314(layout);
    auto offsets = parse_debug_offsets(words);
    REQUIRE(offsets);
    PythonLayout checked = layout;
    auto agree = apply_debug_offsets(*offsets, checked);
    CHECK(agree.understood);
    CHECK(agree.differences.empty());

    words[27] += 8;  // thread_id moved in this build
    auto moved = parse_debug_offsets(words);
    PythonLayout adjusted = layout;
    auto differs = apply_debug_offsets(*moved, adjusted);
    CHECK(differs.understood);
    REQUIRE(differs.differences.size() == 1);
    CHECK(differs.differences[0].find("tstate_thread_id") != std::string::npos);
    CHECK(adjusted.tstate_thread_id == layout.tstate_thread_id + 8);
}

TEST_CASE("implausible or unknown debug offsets are not used") {
    PythonLayout layout = *find_layout(3, 14);
    auto words = words_for_314(layout);
    words[26] = 100000;  // current_frame beyond the thread state
    PythonLayout untouched = layout;
    CHECK_FALSE(apply_debug_offsets(*parse_debug_offsets(words), untouched).understood);
    CHECK(untouched.tstate_frame == layout.tstate_frame);

    words = words_for_314(layout);
    words[1] = 0x031000f0;  // 3.16: shape unknown to this build
    CHECK_FALSE(apply_debug_offsets(*parse_debug_offsets(words), untouched).understood);
}

TEST_CASE("free-threaded builds are recognised by their ABI flag") {
    CHECK(is_free_threaded_file_name("/usr/bin/python3.13t"));
    CHECK(is_free_threaded_file_name("/usr/lib/x86_64-linux-gnu/libpython3.14t.so.1.0"));
    CHECK(is_free_threaded_file_name("/usr/bin/python3.14td"));
    CHECK_FALSE(is_free_threaded_file_name("/usr/bin/python3.13"));
    CHECK_FALSE(is_free_threaded_file_name("/usr/bin/python3.14d"));
    CHECK_FALSE(is_free_threaded_file_name("/usr/lib/libpython3.12.so.1.0"));
}

TEST_CASE("a live 3.13 interpreter's own offsets are read and agree with the table") {
    const char* python = "/root/.pyenv/versions/3.13.0/bin/python";
    if (::access(python, X_OK) != 0) {
        MESSAGE("skipped: no CPython 3.13 at " << python);
        return;
    }
    pid_t child = ::fork();
    REQUIRE(child >= 0);
    if (child == 0) {
        ::execl(python, python, "-c", "import time; time.sleep(30)", static_cast<char*>(nullptr));
        ::_exit(127);
    }
    bool checked = false;
    for (int attempt = 0; attempt < 100 && !checked; ++attempt) {
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
        try {
            PythonProcess process(child);
            checked = process.layout_checked() && process.version().minor == 13;
        } catch (const std::exception&) {
            // still starting
        }
    }
    ::kill(child, SIGKILL);
    ::waitpid(child, nullptr, 0);
    CHECK(checked);
}
