#include <doctest/doctest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <csignal>
#include <cstring>
#include <string>
#include <thread>

#include "attach/memory.hpp"
#include "model/debug_offsets.hpp"
#include "model/gil.hpp"
#include "model/layout.hpp"
#include "model/python_process.hpp"

using namespace pysample::sampler;

namespace {

struct Version {
    int major;
    int minor;
    bool at_least(int ma, int mi) const { return major > ma || (major == ma && minor >= mi); }
};

const Version kSupported[] = {{2, 7},  {3, 6},  {3, 7},  {3, 8},  {3, 9}, {3, 10},
                              {3, 11}, {3, 12}, {3, 13}, {3, 14}, {3, 15}};

// 3.14's struct as words, filled from the table at the positions 3.14 uses, the GIL's fields as
// offsets into an interpreter that embeds it at `gil_at`.
std::vector<std::uint64_t> words_for_314(const PythonLayout& l, std::uint64_t gil_at = 4096) {
    std::vector<std::uint64_t> words(95, 0);
    std::memcpy(words.data(), "xdebugpy", 8);
    words[1] = 0x030e0af0;
    const std::pair<int, std::int64_t> fields[] = {
        {5, l.runtime_interpreters_head},
        {6, std::int64_t{1} << 20},  // sizeof(PyInterpreterState): large, with its embedded arrays
        {8, l.interp_next},
        {9, l.interp_threads_head},
        {12, l.interp_modules},
        {15, l.interp_gil},
        {16, static_cast<std::int64_t>(gil_at)},
        {18, static_cast<std::int64_t>(gil_at) + l.gil_locked},
        {19, static_cast<std::int64_t>(gil_at) + l.gil_last_holder},
        {22, l.tstate_size},
        {24, l.tstate_next},
        {25, l.tstate_interp},
        {26, l.tstate_frame},
        {27, l.tstate_thread_id},
        {28, l.tstate_native_thread_id},
        {31, l.iframe_size},
        {32, l.iframe_previous},
        {33, l.iframe_code},
        {34, l.iframe_instr},
        {35, l.iframe_localsplus},
        {36, l.iframe_owner},
        {39, l.code_size},
        {40, l.code_filename},
        {41, l.code_name},
        {42, l.code_qualname},
        {43, l.code_linetable},
        {44, l.code_firstlineno},
        {46, l.code_localsplusnames},
        {47, l.code_localspluskinds},
        {48, l.code_adaptive},
        {51, l.object_type},
        {53, l.type_name},
        {57, l.tuple_items},
        {58, l.var_size},
        {63, l.set_used},
        {70, l.float_value},
        {72, l.long_size},
        {73, l.long_digits},
        {75, l.bytes_size},
        {76, l.bytes_data},
        {78, l.unicode_state},
        {79, l.unicode_length},
        {80, l.unicode_ascii_data},
    };
    for (auto [index, value] : fields) words[static_cast<std::size_t>(index)] = static_cast<std::uint64_t>(value);
    return words;
}

}  // namespace

TEST_CASE("where each version keeps the GIL holder") {
    for (const auto [major, minor] : kSupported) {
        CAPTURE(major);
        CAPTURE(minor);
        const Version v{major, minor};
        const PythonLayout l = find_layout(major, minor).value();
        bool runtime = v.at_least(3, 7) && !v.at_least(3, 12);
        CHECK((l.runtime_tstate_current > 0) == runtime);
        CHECK((l.runtime_gil > 0) == runtime);
        CHECK((l.interp_gil >= 0) == v.at_least(3, 12));
        CHECK((l.gil_locked > 0) == v.at_least(3, 7));
        CHECK((l.gil_last_holder > 0) == v.at_least(3, 7));
        if (v.at_least(3, 7)) CHECK(l.gil_locked != l.gil_last_holder);
    }
    // struct _gil_runtime_state: interval, then last_holder, then locked.
    CHECK(find_layout(3, 12)->gil_last_holder == 8);
    CHECK(find_layout(3, 12)->gil_locked == 16);
    CHECK(find_layout(3, 13)->interp_gil == 16);  // ceval.gil, near the start from 3.13
}

TEST_CASE("frame variables and object fields per version") {
    for (const auto [major, minor] : kSupported) {
        CAPTURE(major);
        CAPTURE(minor);
        const Version v{major, minor};
        const PythonLayout l = find_layout(major, minor).value();
        bool legacy = !v.at_least(3, 11);
        CHECK((l.frame_localsplus > 0) == legacy);
        if (legacy) CHECK(l.frame_localsplus < l.frame_size);
        CHECK((l.code_varnames > 0) == legacy);
        CHECK((l.code_cellvars > 0) == legacy);
        CHECK((l.code_freevars > 0) == legacy);
        CHECK((l.iframe_localsplus > 0) == !legacy);
        if (!legacy) CHECK(l.iframe_localsplus < l.iframe_size);
        CHECK((l.code_localsplusnames > 0) == !legacy);
        CHECK((l.code_localspluskinds > 0) == !legacy);
        for (const std::int64_t off :
             {l.code_varnames, l.code_cellvars, l.code_freevars, l.code_localsplusnames, l.code_localspluskinds}) {
            CHECK(off < l.code_size);
        }
        if (!legacy) {
            CHECK(l.fast_local == 0x20);
            CHECK(l.fast_cell == 0x40);
            CHECK(l.fast_free == 0x80);
        }
        CHECK((l.fast_hidden == 0x10) == v.at_least(3, 12));
        CHECK((l.stackref_tag_bits == 3) == v.at_least(3, 14));
        CHECK((l.stackref_int_tag == 3) == v.at_least(3, 14));

        // PyObject_HEAD and PyObject_VAR_HEAD on 64-bit.
        CHECK(l.object_type == 8);
        CHECK(l.var_size == 16);
        CHECK(l.type_name == 24);
        CHECK(l.tuple_items == (v.at_least(3, 14) ? 32 : 24));  // 3.14 caches the hash before the items
        CHECK(l.float_value == 16);
        CHECK(l.cell_ref == 16);
        CHECK(l.long_size == 16);
        CHECK(l.long_digits == 24);
        CHECK(l.long_shift == 30);
        CHECK(l.long_digit_size == 4);
        CHECK((l.long_non_size_bits == 3) == v.at_least(3, 12));
        CHECK(l.set_used == 24);
        CHECK(l.dict_used == (major == 2 ? 24 : 16));  // 2.7's dict starts with ma_fill
        CHECK((l.int_value == 16) == (major == 2));
        CHECK((l.unicode_py2_str > l.unicode_py2_length) == (major == 2));
        CHECK((l.unicode_legacy_data > 0 && l.unicode_legacy_data >= l.unicode_compact_data) == (major == 3));
    }
}

TEST_CASE("published offsets for the GIL and for values are checked and taken in their own groups") {
    const PythonLayout layout = *find_layout(3, 14);
    auto words = words_for_314(layout);
    PythonLayout checked = layout;
    auto agree = apply_debug_offsets(*parse_debug_offsets(words), checked);
    CHECK(agree.understood);
    CHECK(agree.differences.empty());
    CHECK(agree.ignored.empty());

    words[18] += 8;  // locked moved within the GIL
    words[35] -= 8;  // so did localsplus in the frame
    PythonLayout adjusted = layout;
    auto moved = apply_debug_offsets(*parse_debug_offsets(words), adjusted);
    REQUIRE(moved.differences.size() == 2);
    CHECK(moved.differences[0].find("gil_locked") != std::string::npos);
    CHECK(adjusted.gil_locked == layout.gil_locked + 8);
    CHECK(adjusted.iframe_localsplus == layout.iframe_localsplus - 8);

    // A GIL field outside the GIL, and a value field of 0: those groups are left to the table,
    // the stack fields still taken.
    words = words_for_314(layout);
    words[19] = 100;  // last_holder before the GIL that holds it
    words[72] = 0;    // lv_tag
    words[27] += 8;   // thread_id
    PythonLayout partly = layout;
    auto check = apply_debug_offsets(*parse_debug_offsets(words), partly);
    CHECK(check.understood);
    CHECK(check.ignored == std::vector<std::string>{"the GIL", "object values"});
    CHECK(partly.gil_last_holder == layout.gil_last_holder);
    CHECK(partly.long_size == layout.long_size);
    CHECK(partly.tstate_thread_id == layout.tstate_thread_id + 8);
}

namespace {

// Starts `command` (a sleeping interpreter), returns its pid once PythonProcess can read it.
struct SleepingPython {
    pid_t pid = -1;
    std::unique_ptr<PythonProcess> process;

    explicit SleepingPython(const std::vector<std::string>& command) {
        pid = ::fork();
        REQUIRE(pid >= 0);
        if (pid == 0) {
            std::vector<char*> argv;
            for (const auto& arg : command) argv.push_back(const_cast<char*>(arg.c_str()));
            argv.push_back(nullptr);
            ::execv(argv[0], argv.data());
            ::_exit(127);
        }
        for (int attempt = 0; attempt < 200 && !process; ++attempt) {
            std::this_thread::sleep_for(std::chrono::milliseconds(20));
            try {
                auto candidate = std::make_unique<PythonProcess>(pid);
                if (candidate->interpreter_head(candidate->memory()) != 0) process = std::move(candidate);
            } catch (const std::exception&) {
                // still starting
            }
        }
    }
    ~SleepingPython() {
        process.reset();
        if (pid > 0) {
            ::kill(pid, SIGKILL);
            ::waitpid(pid, nullptr, 0);
        }
    }
};

std::vector<std::vector<std::string>> live_pythons_313_and_later() {
    std::vector<std::vector<std::string>> found;
    const char* script = "import time; time.sleep(30)";
    if (::access("/root/.pyenv/versions/3.13.0/bin/python", X_OK) == 0) {
        found.push_back({"/root/.pyenv/versions/3.13.0/bin/python", "-c", script});
    }
    // The sid chroot's interpreters (scripts/get-pythons), which need root to enter.
    for (const char* python : {"/usr/bin/python3.14", "/usr/bin/python3.15", "/usr/bin/python3.14d"}) {
        std::string root = "/var/cache/pysample/sid";
        if (::geteuid() == 0 && ::access((root + python).c_str(), X_OK) == 0) {
            found.push_back({"/usr/sbin/chroot", root, python, "-c", script});
        }
    }
    return found;
}

}  // namespace

TEST_CASE("live 3.13+ interpreters publish the same GIL and value offsets as the table") {
    auto pythons = live_pythons_313_and_later();
    if (pythons.empty()) MESSAGE("skipped: no CPython 3.13+ found");
    for (const auto& command : pythons) {
        CAPTURE(command[command.size() - 3]);
        SleepingPython python(command);
        REQUIRE(python.process);
        auto offsets = read_debug_offsets(python.process->memory(), python.process->runtime_address());
        REQUIRE(offsets);
        auto table = find_layout(offsets->major(), offsets->minor()).value();
        auto check = apply_debug_offsets(*offsets, table);
        CHECK(check.understood);
        CHECK(check.ignored.empty());
        CHECK(check.differences.empty());
        // Once the main thread sleeps, nothing holds the GIL; until then, the main thread does.
        GilReader gil(*python.process);
        REQUIRE(gil.known());
        auto& memory = python.process->memory();
        std::uint64_t interp = python.process->interpreter_head(memory);
        std::uint64_t main_thread = 0;
        memory.read_value(interp + static_cast<std::uint64_t>(table.interp_threads_head), main_thread);
        std::uint64_t holder = gil.holder(memory, interp);
        CHECK((holder == 0 || holder == main_thread));
        for (int attempt = 0; attempt < 150 && holder != 0; ++attempt) {
            std::this_thread::sleep_for(std::chrono::milliseconds(20));
            holder = gil.holder(memory, interp);
        }
        CHECK(holder == 0);
    }
}
