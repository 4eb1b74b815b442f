#include <doctest/doctest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <string>
#include <vector>

#include "attach/live_process.hpp"
#include "attach/memory.hpp"
#include "attach/ptrace.hpp"
#include "attach/registers.hpp"
#include "symbolize/modules.hpp"
#include "symbolize/native_symbols.hpp"
#include "symbolize/native_unwind.hpp"

namespace {

using namespace pysample;

extern "C" __attribute__((noinline)) void unwind_probe_leaf() {
    for (;;) ::pause();
}

extern "C" __attribute__((noinline)) void unwind_probe_middle() {
    unwind_probe_leaf();
    asm volatile("");  // keeps the call from becoming a tail call
}

extern "C" __attribute__((noinline)) void unwind_probe_outer() {
    unwind_probe_middle();
    asm volatile("");
}

// A child process parked in a known call chain, killed when the test ends.
class ParkedChild {
public:
    ParkedChild() {
        pid_ = ::fork();
        if (pid_ == 0) {
            unwind_probe_outer();
            ::_exit(0);
        }
        ::usleep(100'000);  // let it reach pause()
    }
    ~ParkedChild() {
        ::kill(pid_, SIGKILL);
        ::waitpid(pid_, nullptr, 0);
    }
    pid_t pid() const { return pid_; }

private:
    pid_t pid_;
};

std::vector<std::string> unwind_names(pid_t pid, symbolize::UnwindResult& result) {
    attach::ThreadSuspender suspender(pid);
    REQUIRE(suspender.pause());
    auto registers = attach::read_registers(pid);
    REQUIRE(registers.has_value());
    attach::LiveProcess target(pid);
    auto& memory = target.memory();
    symbolize::ModuleMap modules(target);
    const auto* stack_mapping = modules.mapping(registers->sp());
    REQUIRE(stack_mapping != nullptr);
    symbolize::StackCopy stack;
    stack.start = registers->sp() - 128;
    stack.bytes.resize(stack_mapping->end - stack.start);
    REQUIRE(memory.read(stack.start, stack.bytes.data(), stack.bytes.size()));
    suspender.resume();

    symbolize::NativeUnwinder unwinder(modules, memory);
    std::vector<std::uint64_t> pcs;
    result = unwinder.unwind(*registers, stack, pcs);
    symbolize::NativeSymbolizer symbols(modules);
    std::vector<std::string> names;
    for (std::size_t i = 0; i < pcs.size(); ++i) names.push_back(symbols.lookup(i == 0 ? pcs[i] : pcs[i] - 1).function);
    return names;
}

}  // namespace

TEST_CASE("a stopped process's native stack unwinds through its callers to _start") {
    ParkedChild child;
    symbolize::UnwindResult result{};
    auto names = unwind_names(child.pid(), result);
    std::string joined;
    for (const auto& name : names) joined += name + " ";
    INFO("unwound: " << joined);
    CHECK(result == symbolize::UnwindResult::Ok);
    auto leaf = std::find(names.begin(), names.end(), "unwind_probe_leaf");
    REQUIRE(leaf != names.end());
    REQUIRE(names.end() - leaf >= 3);
    CHECK(*(leaf + 1) == "unwind_probe_middle");
    CHECK(*(leaf + 2) == "unwind_probe_outer");
    // Above the leaf: pause() in libc; below the chain: the test runner, then the C runtime start.
    CHECK(leaf != names.begin());
    CHECK(names.back() == "_start");
}

TEST_CASE("an unwinding that needs memory nobody has fails instead of inventing frames") {
    ParkedChild child;
    attach::ThreadSuspender suspender(child.pid());
    REQUIRE(suspender.pause());
    auto registers = attach::read_registers(child.pid());
    REQUIRE(registers.has_value());
    suspender.resume();
    attach::LiveProcess target(child.pid());
    auto& memory = target.memory();
    symbolize::ModuleMap modules(target);
    symbolize::NativeUnwinder unwinder(modules, memory);

    // Registers pointing at unmapped stack memory: no copy, and the live read fails too.
    auto broken = *registers;
    broken.values[attach::Registers::kSp] = 0x10;
    broken.values[6] = 0x10;  // rbp
    symbolize::StackCopy empty;
    std::vector<std::uint64_t> pcs;
    auto result = unwinder.unwind(broken, empty, pcs);
    CHECK(result != symbolize::UnwindResult::Ok);
}
