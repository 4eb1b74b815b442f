#include <doctest/doctest.h>
#include <unistd.h>

#include <cstring>

#include "attach/memory.hpp"
#include "symbolize/pycode.hpp"

using namespace pysample;

namespace {

// Objects laid out like CPython 3.12's in this process's own memory, read back through the
// live-process reader.
struct FakeObjects {
    static constexpr std::uint64_t kCodeType = 0xC0DE;
    symbolize::CodeObjectLayout layout;
    std::vector<std::uint8_t> code = std::vector<std::uint8_t>(128);
    std::vector<std::vector<std::uint8_t>> others;

    FakeObjects() {
        layout.size = 128;
        layout.filename = 40;
        layout.name = 48;
        layout.qualname = 56;
        layout.firstlineno = 64;
        layout.linetable = 72;
        layout.firsttraceable = 80;
        layout.unicode_length = 16;
        layout.unicode_state = 32;
        layout.unicode_ascii_data = 40;
        layout.unicode_compact_data = 56;
        layout.bytes_size = 16;
        layout.bytes_data = 32;
        layout.format = symbolize::LineTableFormat::LocationTable311;
        put(code, 8, kCodeType);
    }

    template <typename T>
    static void put(std::vector<std::uint8_t>& bytes, std::size_t offset, T value) {
        std::memcpy(bytes.data() + offset, &value, sizeof(value));
    }

    std::uint64_t ascii(const std::string& text) {
        auto& object = others.emplace_back(40 + text.size() + 1);
        put(object, 16, static_cast<std::int64_t>(text.size()));
        put(object, 32, std::uint32_t{(1u << 2) | (1u << 5) | (1u << 6)});  // kind 1, compact, ascii
        std::memcpy(object.data() + 40, text.data(), text.size());
        return reinterpret_cast<std::uint64_t>(object.data());
    }

    std::uint64_t bytes(const std::vector<std::uint8_t>& data) {
        auto& object = others.emplace_back(32 + data.size());
        put(object, 16, static_cast<std::int64_t>(data.size()));
        std::memcpy(object.data() + 32, data.data(), data.size());
        return reinterpret_cast<std::uint64_t>(object.data());
    }

    void make_code(const std::string& qualname, const std::string& filename, int firstlineno) {
        others.reserve(64);  // keep earlier objects in place
        put(code, 40, ascii(filename));
        put(code, 48, ascii("name"));
        put(code, 56, ascii(qualname));
        put(code, 64, static_cast<std::int32_t>(firstlineno));
        // One short-form entry of 4 code units on the first line.
        put(code, 72, bytes({0x80 | (0 << 3) | 3, 0}));
    }

    std::uint64_t address() const { return reinterpret_cast<std::uint64_t>(code.data()); }
};

}  // namespace

TEST_CASE("code objects resolve to qualified name, file and line") {
    FakeObjects objects;
    objects.make_code("Worker.run", "/app/worker.py", 41);
    attach::ProcessMemory memory(::getpid());
    symbolize::CodeCache cache(memory, objects.layout, FakeObjects::kCodeType);
    const auto* info = cache.lookup(objects.address());
    REQUIRE(info != nullptr);
    CHECK(info->function == "Worker.run");
    CHECK(info->filename == "/app/worker.py");
    CHECK(info->line_at(0) == 41);
    CHECK(info->line_at(-1) == 41);
}

TEST_CASE("a new code object at a cached address replaces the stale entry") {
    FakeObjects objects;
    objects.others.reserve(64);
    objects.make_code("<module>", "/app/startup.py", 1);
    attach::ProcessMemory memory(::getpid());
    symbolize::CodeCache cache(memory, objects.layout, FakeObjects::kCodeType);
    REQUIRE(cache.lookup(objects.address()) != nullptr);
    CHECK(cache.lookup(objects.address())->function == "<module>");

    objects.make_code("burn", "/app/main.py", 7);  // same address, new object
    const auto* info = cache.lookup(objects.address());
    REQUIRE(info != nullptr);
    CHECK(info->function == "burn");
    CHECK(info->filename == "/app/main.py");
    CHECK(info->firstlineno == 7);
    CHECK(cache.size() == 1);
}

TEST_CASE("an object of another type is not taken for a code object") {
    FakeObjects objects;
    objects.make_code("f", "/f.py", 1);
    FakeObjects::put(objects.code, 8, std::uint64_t{0xBAD});
    attach::ProcessMemory memory(::getpid());
    symbolize::CodeCache cache(memory, objects.layout, FakeObjects::kCodeType);
    CHECK(cache.lookup(objects.address()) == nullptr);
    CHECK(cache.lookup(0) == nullptr);
}

TEST_CASE("between samples a code object still on the stack is trusted; one that left it is checked again") {
    FakeObjects objects;
    objects.others.reserve(64);
    objects.make_code("first", "/app/a.py", 1);
    attach::ProcessMemory memory(::getpid());
    symbolize::CodeCache cache(memory, objects.layout, FakeObjects::kCodeType);
    cache.new_sample();
    REQUIRE(cache.lookup(objects.address()) != nullptr);
    CHECK(cache.lookup(objects.address())->code_bytes == 0);  // no bytecode in the fake object

    objects.make_code("second", "/app/b.py", 2);  // same address, new object
    cache.new_sample();                           // ...while the old one was on the previous sample's stack
    CHECK(cache.lookup(objects.address())->function == "first");
    CHECK(cache.lookup(objects.address(), true)->function == "second");  // a frame that does not fit forces the check

    objects.make_code("third", "/app/c.py", 3);
    cache.new_sample();
    cache.new_sample();  // a sample without it
    CHECK(cache.lookup(objects.address())->function == "third");
}

TEST_CASE("an instruction offset belongs to a code object only within its bytecode") {
    symbolize::CodeInfo info;
    CHECK(info.holds_offset(1 << 20));  // length unknown: anything goes
    info.code_bytes = 40;
    CHECK(info.holds_offset(-2));  // 3.11/3.12: before the first instruction
    CHECK(info.holds_offset(38));
    CHECK_FALSE(info.holds_offset(40));
    CHECK_FALSE(info.holds_offset(-4));
}
