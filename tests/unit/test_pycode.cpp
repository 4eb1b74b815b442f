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

namespace {

// A compact str of `kind` bytes per character (1: Latin-1, 2: UCS-2, 4: UCS-4), not ASCII.
std::uint64_t compact_str(FakeObjects& objects, const std::vector<std::uint32_t>& code_points, unsigned kind) {
    auto& object = objects.others.emplace_back(56 + code_points.size() * kind + kind);
    FakeObjects::put(object, 16, static_cast<std::int64_t>(code_points.size()));
    FakeObjects::put(object, 32, std::uint32_t{(kind << 2) | (1u << 5)});  // compact, not ascii
    for (std::size_t i = 0; i < code_points.size(); ++i) {
        std::memcpy(object.data() + 56 + i * kind, &code_points[i], kind);
    }
    return reinterpret_cast<std::uint64_t>(object.data());
}

// A Python 2 str: bytes, laid out like a bytes object.
std::uint64_t byte_str(FakeObjects& objects, const std::string& text) {
    return objects.bytes(std::vector<std::uint8_t>(text.begin(), text.end()));
}

}  // namespace

TEST_CASE("lone surrogates become U+FFFD and characters past the BMP stay whole") {
    FakeObjects objects;
    objects.others.reserve(64);
    attach::ProcessMemory memory(::getpid());
    auto ucs2 = compact_str(objects, {'a', 0xDCFF, 'b', 0xD800}, 2);
    CHECK(symbolize::read_unicode(memory, objects.layout, ucs2) ==
          "a\xEF\xBF\xBD"
          "b\xEF\xBF\xBD");
    auto ucs4 = compact_str(objects, {0x1F525, 0xDC80, 'x'}, 4);
    CHECK(symbolize::read_unicode(memory, objects.layout, ucs4) == "\xF0\x9F\x94\xA5\xEF\xBF\xBDx");
}

TEST_CASE("names and file names longer than 4096 characters are cut with a marker giving their length") {
    FakeObjects objects;
    objects.make_code("f", "/f.py", 1);
    std::string huge(1'000'000, 'L');
    FakeObjects::put(objects.code, 56, objects.ascii(huge));
    FakeObjects::put(objects.code, 40, compact_str(objects, std::vector<std::uint32_t>(5000, 0xE9), 1));
    attach::ProcessMemory memory(::getpid());
    symbolize::CodeCache cache(memory, objects.layout, FakeObjects::kCodeType);
    const auto* info = cache.lookup(objects.address());
    REQUIRE(info != nullptr);
    CHECK(info->function == std::string(4096, 'L') + "\xE2\x80\xA6[truncated, 1000000 characters]");
    std::string e_acute_4096;
    for (int i = 0; i < 4096; ++i) e_acute_4096 += "\xC3\xA9";
    CHECK(info->filename == e_acute_4096 + "\xE2\x80\xA6[truncated, 5000 characters]");
}

TEST_CASE("Python 2 byte strings are read as UTF-8, invalid bytes replaced, long ones cut with a marker") {
    FakeObjects objects;
    objects.make_code("f", "/f.py", 1);
    objects.layout.strings = symbolize::StringKind::Bytes;
    objects.layout.qualname = -1;
    FakeObjects::put(objects.code, 48,
                     byte_str(objects, "bad\xFF\xFE\xED\xB3\xBF caf\xC3\xA9 \xF0\x9F\x94\xA5 end\xC3"));
    FakeObjects::put(objects.code, 40, byte_str(objects, std::string(5000, 'F')));
    attach::ProcessMemory memory(::getpid());
    symbolize::CodeCache cache(memory, objects.layout, FakeObjects::kCodeType);
    const auto* info = cache.lookup(objects.address());
    REQUIRE(info != nullptr);
    const std::string r = "\xEF\xBF\xBD";
    CHECK(info->function == "bad" + r + r + r + r + r + " caf\xC3\xA9 \xF0\x9F\x94\xA5 end" + r);
    CHECK(info->filename == std::string(4096, 'F') + "\xE2\x80\xA6[truncated, 5000 bytes]");
    CHECK(symbolize::utf8_from_bytes("\xC0\x80 \xF4\x90\x80\x80 ok") == r + r + " " + r + r + r + r + " ok");
}
