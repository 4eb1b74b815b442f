#include <doctest/doctest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <map>

#include "model/python_process.hpp"
#include "model/stack_walker.hpp"

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

TEST_CASE("version literals of pre-3.8 interpreter binaries are found and not confused") {
    const std::pair<const char*, std::pair<int, int>> binaries[] = {
        {"/root/.pyenv/versions/3.7.16/lib/libpython3.7m.so.1.0", {3, 7}},
        {"/root/.pyenv/versions/3.6.15/lib/libpython3.6m.so.1.0", {3, 6}},
        {"/root/.pyenv/versions/2.7.18/lib/libpython2.7.so.1.0", {2, 7}},
    };
    for (const auto& [path, version] : binaries) {
        if (::access(path, R_OK) != 0) {
            MESSAGE("skipped (not installed): " << path);
            continue;
        }
        INFO(std::string(path));
        pysample::symbolize::ElfFile elf(path);
        auto found = version_strings_in(elf);
        std::string seen;
        for (const auto& [major, minor] : found) seen += " " + std::to_string(major) + "." + std::to_string(minor);
        INFO("found:" << seen);
        CHECK(found == std::set<std::pair<int, int>>{version});
        auto named = version_from_file_name(path);
        REQUIRE(named);
        CHECK(std::make_pair(named->major, named->minor) == version);
    }
    auto py2 = version_from_file_name("/usr/bin/python2.7");
    REQUIRE(py2);
    CHECK(py2->major == 2);
    CHECK(py2->minor == 7);
}

namespace {

// A Python child sleeping in a function `sleeper` of code compiled from "<string>".
class SleepingPython {
public:
    explicit SleepingPython(const char* python) {
        int fds[2];
        REQUIRE(::pipe(fds) == 0);
        pid_ = ::fork();
        REQUIRE(pid_ >= 0);
        if (pid_ == 0) {
            ::dup2(fds[1], 1);
            ::close(fds[0]);
            ::close(fds[1]);
            const char* code =
                "import sys, time\n"
                "def sleeper():\n"
                "    sys.stdout.write('ready\\n'); sys.stdout.flush(); time.sleep(60)\n"
                "sleeper()\n";
            ::execl(python, python, "-c", code, static_cast<char*>(nullptr));
            ::_exit(127);
        }
        ::close(fds[1]);
        char buffer[16] = {};
        ssize_t got = ::read(fds[0], buffer, sizeof(buffer) - 1);
        ::close(fds[0]);
        ready_ = got > 0 && std::string(buffer, static_cast<std::size_t>(got)) == "ready\n";
    }
    ~SleepingPython() {
        ::kill(pid_, SIGKILL);
        ::waitpid(pid_, nullptr, 0);
    }
    pid_t pid() const { return pid_; }
    bool ready() const { return ready_; }

private:
    pid_t pid_ = -1;
    bool ready_ = false;
};

}  // namespace

TEST_CASE("pre-3.8 interpreters: runtime found, threads walked, names read (2.7: byte strings)") {
    struct Case {
        const char* python;
        int major, minor;
        bool has_runtime;  // _PyRuntime from 3.7, the static interp_head before
    };
    const Case cases[] = {
        {"/root/.pyenv/versions/3.7.16/bin/python3.7", 3, 7, true},
        {"/root/.pyenv/versions/3.6.15/bin/python3.6", 3, 6, false},
        {"/root/.pyenv/versions/2.7.18/bin/python2.7", 2, 7, false},
    };
    for (const auto& c : cases) {
        if (::access(c.python, X_OK) != 0) {
            MESSAGE("skipped (not installed): " << c.python);
            continue;
        }
        INFO(std::string(c.python));
        SleepingPython child(c.python);
        REQUIRE(child.ready());
        PythonProcess process(child.pid());
        CHECK(process.version().major == c.major);
        CHECK(process.version().minor == c.minor);
        CHECK((process.runtime_address() != 0) == c.has_runtime);
        CHECK(process.interpreter_head_address() != 0);
        auto code_layout = process.code_layout();
        CHECK((code_layout.strings == pysample::symbolize::StringKind::Bytes) == (c.major == 2));
        std::uint64_t interp = process.interpreter_head(process.memory());
        REQUIRE(interp != 0);
        pysample::symbolize::CodeCache codes(process.memory(), code_layout, process.code_type_address());
        StackWalker walker(process.layout(), process.memory(), codes);
        std::vector<ThreadStateRef> threads;
        REQUIRE(walker.threads(interp, threads) == WalkResult::Ok);
        REQUIRE(threads.size() == 1);
        std::vector<PyFrame> frames;
        REQUIRE(walker.frames(threads[0], frames) == WalkResult::Ok);
        REQUIRE(frames.size() == 2);
        CHECK(frames[0].code->function == "sleeper");
        CHECK(frames[0].code->filename == "<string>");
        CHECK(frames[0].line == 3);
        CHECK(frames[1].code->function == "<module>");
        CHECK(frames[1].line == 4);
    }
}

namespace {

// A process's memory with some 8-byte values replaced, as a read racing a change would see them.
class ForgedMemory final : public pysample::attach::Memory {
public:
    explicit ForgedMemory(pysample::attach::Memory& real) : real_(real) {}
    void forge(std::uint64_t address, std::uint64_t value) { forged_[address] = value; }
    bool read(std::uint64_t addr, void* dest, std::size_t len) override {
        if (!real_.read(addr, dest, len)) return false;
        for (const auto& [address, value] : forged_) {
            if (address >= addr && address + sizeof(value) <= addr + len) {
                std::memcpy(static_cast<char*>(dest) + (address - addr), &value, sizeof(value));
            }
        }
        return true;
    }

private:
    pysample::attach::Memory& real_;
    std::map<std::uint64_t, std::uint64_t> forged_;
};

}  // namespace

TEST_CASE("3.11+: a frame chain that ends before its thread's first evaluation call is rejected as torn") {
    struct Case {
        const char* python;
        int major, minor;
    };
    const Case cases[] = {
        {"/root/.pyenv/versions/3.11.7/bin/python3.11", 3, 11},
        {"/usr/bin/python3.11", 3, 11},
        {"/root/.pyenv/versions/3.12.1/bin/python3.12", 3, 12},
        {"/root/.pyenv/versions/3.13.0/bin/python3.13", 3, 13},
    };
    int checked = 0;
    for (const auto& c : cases) {
        if (::access(c.python, X_OK) != 0) {
            MESSAGE("skipped (not installed): " << c.python);
            continue;
        }
        INFO(std::string(c.python));
        SleepingPython child(c.python);
        REQUIRE(child.ready());
        PythonProcess process(child.pid());
        pysample::symbolize::CodeCache codes(process.memory(), process.code_layout(), process.code_type_address());
        ForgedMemory memory(process.memory());
        StackWalker walker(process.layout(), memory, codes);
        std::vector<ThreadStateRef> threads;
        REQUIRE(walker.threads(process.interpreter_head(process.memory()), threads) == WalkResult::Ok);
        REQUIRE(threads.size() == 1);
        std::vector<PyFrame> frames;
        REQUIRE(walker.frames(threads[0], frames) == WalkResult::Ok);
        REQUIRE(frames.size() == 2);
        // The sleeper's caller unlinked, as a thread ending or a reused data stack shows it.
        memory.forge(frames[0].address + static_cast<std::uint64_t>(process.layout().iframe_previous), 0);
        CHECK(walker.frames(threads[0], frames) == WalkResult::Torn);
        ++checked;
    }
    if (checked == 0) MESSAGE("no 3.11+ interpreter found to check");
}
