#include <doctest/doctest.h>

#include <algorithm>
#include <climits>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <vector>

#include "model/python_version.hpp"
#include "symbolize/linetable.hpp"

using pysample::sampler::version_facts;
using pysample::symbolize::line_for_offset;
using pysample::symbolize::LineTableFormat;

namespace {

using Bytes = std::vector<std::uint8_t>;

constexpr std::size_t kMinimumFixtureFiles = 8;

struct PythonVersion {
    int major = 0;
    int minor = 0;
};

struct Fixture {
    std::string file;
    std::string version;
    PythonVersion python;
    LineTableFormat format = LineTableFormat::Lnotab;
    bool signed_lnotab = true;
    nlohmann::json code_objects;
};

Bytes from_hex(const std::string& hex) {
    Bytes bytes;
    bytes.reserve(hex.size() / 2);
    for (std::size_t i = 0; i + 1 < hex.size(); i += 2) {
        bytes.push_back(static_cast<std::uint8_t>(std::stoi(hex.substr(i, 2), nullptr, 16)));
    }
    return bytes;
}

PythonVersion parse_version(const std::string& text) {
    PythonVersion version;
    const auto dot = text.find('.');
    version.major = std::stoi(text.substr(0, dot));
    version.minor = std::stoi(text.substr(dot + 1));
    return version;
}

LineTableFormat parse_format(const std::string& name) {
    if (name == "Lnotab") {
        return LineTableFormat::Lnotab;
    }
    if (name == "Linetable310") {
        return LineTableFormat::Linetable310;
    }
    REQUIRE_MESSAGE(name == "LocationTable311", "unknown format " << name);
    return LineTableFormat::LocationTable311;
}

std::vector<std::filesystem::path> fixture_paths() {
    std::vector<std::filesystem::path> paths;
    for (const auto& entry : std::filesystem::directory_iterator(PYSAMPLE_FIXTURE_DIR)) {
        const std::string name = entry.path().filename().string();
        if (name.starts_with("linetable-") && name.ends_with(".json")) {
            paths.push_back(entry.path());
        }
    }
    std::sort(paths.begin(), paths.end());
    return paths;
}

Fixture load_fixture(const std::filesystem::path& path) {
    std::ifstream in(path);
    REQUIRE_MESSAGE(in.good(), "cannot open " << path.string());
    const auto doc = nlohmann::json::parse(in);
    Fixture fixture;
    fixture.file = path.filename().string();
    fixture.version = doc.at("python_version").get<std::string>();
    fixture.python = parse_version(fixture.version);
    fixture.format = parse_format(doc.at("format").get<std::string>());
    fixture.signed_lnotab = doc.at("signed_lnotab").get<bool>();
    fixture.code_objects = doc.at("code_objects");
    return fixture;
}

std::vector<Fixture> load_fixtures() {
    std::vector<Fixture> fixtures;
    for (const auto& path : fixture_paths()) {
        fixtures.push_back(load_fixture(path));
    }
    return fixtures;
}

LineTableFormat line_table_format(int major, int minor) { return version_facts(major, minor).line_table; }

int decode(const Fixture& fixture, const Bytes& table, int firstlineno, std::int64_t offset) {
    return line_for_offset(fixture.format, table, firstlineno, offset, fixture.signed_lnotab);
}

// Checks every [offset, line] pair in `pairs` for one code object.
void check_pairs(const Fixture& fixture, const nlohmann::json& code, const std::string& source) {
    const std::string name = code.at("name").get<std::string>();
    const int firstlineno = code.at("firstlineno").get<int>();
    const Bytes table = from_hex(code.at("table").get<std::string>());
    for (const auto& pair : code.at(source)) {
        const auto offset = pair.at(0).get<std::int64_t>();
        const int expected = pair.at(1).get<int>();
        INFO("Python " << fixture.version << " (" << fixture.file << ") " << source << " of " << name
                       << " at byte offset " << offset);
        CHECK(decode(fixture, table, firstlineno, offset) == expected);
    }
}

// Offsets to probe in a code object: a spread of its expected offsets plus one past the end.
std::vector<std::int64_t> sampled_offsets(const nlohmann::json& code, std::size_t count) {
    const auto& expected = code.at("expected");
    std::vector<std::int64_t> offsets;
    const std::size_t step = std::max<std::size_t>(1, expected.size() / count);
    for (std::size_t i = 0; i < expected.size(); i += step) {
        offsets.push_back(expected[i].at(0).get<std::int64_t>());
    }
    if (!expected.empty()) {
        offsets.push_back(expected.back().at(0).get<std::int64_t>() + 2);
    }
    return offsets;
}

// A prefix of a 3.10 or 3.11+ table that ends on an entry boundary still describes its leading
// ranges correctly; offsets past them have no line.
bool ends_on_entry_boundary(LineTableFormat format, const Bytes& table, std::size_t length) {
    if (format == LineTableFormat::Linetable310) {
        return length % 2 == 0;
    }
    return length == table.size() || (table[length] & 0x80) != 0;
}

}  // namespace

TEST_CASE("linetable: the model's format per CPython version") {
    CHECK(line_table_format(2, 7) == LineTableFormat::Lnotab);
    CHECK(line_table_format(3, 5) == LineTableFormat::Lnotab);
    CHECK(line_table_format(3, 6) == LineTableFormat::Lnotab);
    CHECK(line_table_format(3, 9) == LineTableFormat::Lnotab);
    CHECK(line_table_format(3, 10) == LineTableFormat::Linetable310);
    CHECK(line_table_format(3, 11) == LineTableFormat::LocationTable311);
    CHECK(line_table_format(3, 12) == LineTableFormat::LocationTable311);
    CHECK(line_table_format(3, 13) == LineTableFormat::LocationTable311);
    CHECK(line_table_format(3, 14) == LineTableFormat::LocationTable311);
}

TEST_CASE("linetable: negative offset gives firstlineno") {
    const Bytes table = {0x02, 0x05};
    for (auto format : {LineTableFormat::Lnotab, LineTableFormat::Linetable310, LineTableFormat::LocationTable311}) {
        CHECK(line_for_offset(format, table, 17, -1) == 17);
        CHECK(line_for_offset(format, table, 17, INT64_MIN) == 17);
        CHECK(line_for_offset(format, {}, 17, -2) == 17);
    }
}

TEST_CASE("linetable: lnotab line increments are unsigned before 3.6") {
    // (0, +200) then (10, 0x90): +144 unsigned, -112 signed.
    const Bytes table = {0x00, 200, 10, 0x90};
    CHECK(line_for_offset(LineTableFormat::Lnotab, table, 1, 0, false) == 201);
    CHECK(line_for_offset(LineTableFormat::Lnotab, table, 1, 9, false) == 201);
    CHECK(line_for_offset(LineTableFormat::Lnotab, table, 1, 10, false) == 345);
    CHECK(line_for_offset(LineTableFormat::Lnotab, table, 1, 0, true) == 1 - 56);
    CHECK(line_for_offset(LineTableFormat::Lnotab, table, 1, 10, true) == 1 - 56 - 112);
    // Past the table the last line holds.
    CHECK(line_for_offset(LineTableFormat::Lnotab, table, 1, 100000, false) == 345);
}

TEST_CASE("linetable: 3.10 ranges, no-line marker and empty ranges") {
    const Bytes table = {4, 0, 2, 0x80, 254, 2, 0, 127, 2, 0};
    const auto line = [&](std::int64_t offset) {
        return line_for_offset(LineTableFormat::Linetable310, table, 10, offset);
    };
    CHECK(line(0) == 10);
    CHECK(line(3) == 10);
    CHECK(line(4) == -1);
    CHECK(line(5) == -1);
    CHECK(line(6) == 12);  // -128 left the running line alone
    CHECK(line(259) == 12);
    CHECK(line(260) == 139);  // the empty range still moved the line by 127
    CHECK(line(261) == 139);
    CHECK(line(262) == -1);  // past the table
}

TEST_CASE("linetable: 3.11 entry kinds and varints") {
    // clang-format off
    const Bytes table = {
        0xF0, 0x50, 0x06, 0x00, 0x01, 0x01,  // long form, 1 unit, line +200 (varint 400)
        0x81, 0x00,                          // short form, 2 units, same line
        0xF8,                                // no location, 1 unit
        0xE8, 0x07,                          // no columns, 1 unit, line -3
        0xE0, 0x04, 0x05,                    // one-line form with code 12, 1 unit, line +2
    };
    // clang-format on
    const auto line = [&](std::int64_t offset) {
        return line_for_offset(LineTableFormat::LocationTable311, table, 10, offset);
    };
    CHECK(line(0) == 210);
    CHECK(line(1) == 210);
    CHECK(line(2) == 210);
    CHECK(line(5) == 210);
    CHECK(line(6) == -1);
    CHECK(line(8) == 207);
    CHECK(line(10) == 209);
    CHECK(line(12) == -1);
}

TEST_CASE("linetable: fixtures generated from real interpreters") {
    const auto fixtures = load_fixtures();
    REQUIRE_MESSAGE(fixtures.size() >= kMinimumFixtureFiles, "only " << fixtures.size() << " linetable fixtures in "
                                                                     << PYSAMPLE_FIXTURE_DIR
                                                                     << "; run scripts/gen-linetable-fixtures");
    for (const auto& fixture : fixtures) {
        INFO("Python " << fixture.version << " (" << fixture.file << ")");
        CHECK(line_table_format(fixture.python.major, fixture.python.minor) == fixture.format);
        CHECK(version_facts(fixture.python.major, fixture.python.minor).signed_lnotab == fixture.signed_lnotab);
        CHECK(fixture.code_objects.size() > 10);
        for (const auto& code : fixture.code_objects) {
            check_pairs(fixture, code, "expected");
            check_pairs(fixture, code, "frames");
        }
    }
}

TEST_CASE("linetable: Python 2.7 fixture needs unsigned line increments") {
    for (auto fixture : load_fixtures()) {
        if (fixture.signed_lnotab) {
            continue;
        }
        INFO("Python " << fixture.version);
        fixture.signed_lnotab = true;
        std::size_t wrong_when_signed = 0;
        for (const auto& code : fixture.code_objects) {
            const Bytes table = from_hex(code.at("table").get<std::string>());
            const int firstlineno = code.at("firstlineno").get<int>();
            for (const auto& pair : code.at("expected")) {
                if (decode(fixture, table, firstlineno, pair.at(0).get<std::int64_t>()) != pair.at(1).get<int>()) {
                    ++wrong_when_signed;
                }
            }
        }
        CHECK(wrong_when_signed > 0);
    }
}

Bytes prefix_of(const Bytes& table, std::size_t length) {
    return Bytes(table.begin(), table.begin() + static_cast<std::ptrdiff_t>(length));
}

TEST_CASE("linetable: truncated fixture tables") {
    for (const auto& fixture : load_fixtures()) {
        for (const auto& code : fixture.code_objects) {
            const Bytes table = from_hex(code.at("table").get<std::string>());
            const int firstlineno = code.at("firstlineno").get<int>();
            const auto offsets = sampled_offsets(code, 24);
            for (std::size_t length = 0; length <= table.size(); ++length) {
                const Bytes prefix = prefix_of(table, length);
                const Bytes whole_pairs = prefix_of(table, length & ~std::size_t{1});
                const bool boundary = ends_on_entry_boundary(fixture.format, table, length);
                for (const auto offset : offsets) {
                    INFO("Python " << fixture.version << " " << code.at("name").get<std::string>() << " prefix "
                                   << length << " offset " << offset);
                    const int truncated = decode(fixture, prefix, firstlineno, offset);
                    if (fixture.format != LineTableFormat::LocationTable311) {
                        // A trailing half pair is ignored.
                        REQUIRE(truncated == decode(fixture, whole_pairs, firstlineno, offset));
                    }
                    if (boundary && fixture.format != LineTableFormat::Lnotab) {
                        const int full = decode(fixture, table, firstlineno, offset);
                        REQUIRE((truncated == full || truncated == -1));
                    }
                }
            }
        }
    }
}

TEST_CASE("linetable: garbage tables stay in bounds and terminate" * doctest::timeout(20)) {
    std::mt19937 random(12345);
    std::uniform_int_distribution<int> byte(0, 255);
    const std::int64_t offsets[] = {0, 1, 2, 255, 256, 4096, 1 << 20};
    for (int round = 0; round < 2000; ++round) {
        Bytes table(static_cast<std::size_t>(round % 97) * static_cast<std::size_t>(round % 13 + 1));
        for (auto& b : table) {
            b = static_cast<std::uint8_t>(byte(random));
        }
        const bool signed_lnotab = round % 2 == 0;
        for (auto format :
             {LineTableFormat::Lnotab, LineTableFormat::Linetable310, LineTableFormat::LocationTable311}) {
            for (const auto offset : offsets) {
                static_cast<void>(line_for_offset(format, table, round, offset, signed_lnotab));
            }
        }
        // No table of this size covers that far, so the ranged formats say "no line".
        CHECK(line_for_offset(LineTableFormat::Linetable310, table, round, INT64_MAX) == -1);
        CHECK(line_for_offset(LineTableFormat::LocationTable311, table, round, INT64_MAX) == -1);
    }
}

TEST_CASE("linetable: pathological tables" * doctest::timeout(20)) {
    constexpr std::size_t kHuge = 1 << 20;
    const std::int64_t far = INT64_MAX;

    SUBCASE("unterminated varint") {
        Bytes table(kHuge, 0x7F);
        table[0] = 0xF0;  // long form whose varint continues to the end
        CHECK(line_for_offset(LineTableFormat::LocationTable311, table, 1, 0) != 0);
        CHECK(line_for_offset(LineTableFormat::LocationTable311, table, 1, far) == -1);
    }
    SUBCASE("no entry start") {
        const Bytes table(64, 0x10);
        CHECK(line_for_offset(LineTableFormat::LocationTable311, table, 5, 0) == -1);
    }
    SUBCASE("line leaves int range") {
        const Bytes lnotab(kHuge, 0x7F);  // +127 per pair
        CHECK(line_for_offset(LineTableFormat::Lnotab, lnotab, INT_MAX - 10, far) == -1);
        CHECK(line_for_offset(LineTableFormat::Linetable310, lnotab, INT_MAX - 10, 0x7F * 3) == -1);
        Bytes location;
        for (int i = 0; i < 4; ++i) {
            location.insert(location.end(), {0xE8, 0x7E, 0x7F, 0x7F, 0x7F, 0x7F, 0x3F});
        }
        CHECK(line_for_offset(LineTableFormat::LocationTable311, location, INT_MAX, 6) == -1);
    }
    SUBCASE("every byte an entry header") {
        const Bytes table(kHuge, 0xFF);
        CHECK(line_for_offset(LineTableFormat::LocationTable311, table, 3, far) == -1);
        CHECK(line_for_offset(LineTableFormat::LocationTable311, table, 3, 100) == -1);
        CHECK(line_for_offset(LineTableFormat::Linetable310, table, 3, far) == -1);
        CHECK(line_for_offset(LineTableFormat::Lnotab, table, 3, far) == 3 - static_cast<int>(kHuge / 2));
        CHECK(line_for_offset(LineTableFormat::Lnotab, table, 3, far, false) == 3 + 255 * static_cast<int>(kHuge / 2));
    }
    SUBCASE("empty table") {
        CHECK(line_for_offset(LineTableFormat::Lnotab, {}, 9, 0) == 9);
        CHECK(line_for_offset(LineTableFormat::Linetable310, {}, 9, 0) == -1);
        CHECK(line_for_offset(LineTableFormat::LocationTable311, {}, 9, 0) == -1);
    }
}
