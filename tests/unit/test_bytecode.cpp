// Decodes real interpreters' bytecode (tests/fixtures/bytecode-*.json, made by
// scripts/gen-bytecode-fixtures) with the generated instruction sets, and checks every instruction
// against what that interpreter's own dis module listed: offset, name, argument, jump target and,
// from 3.11, the source position the location table gives.
#include <doctest/doctest.h>

#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "model/bytecode.hpp"
#include "symbolize/linetable.hpp"

using pysample::sampler::ArgKind;
using pysample::sampler::ArgumentNames;
using pysample::sampler::decode_bytecode;
using pysample::sampler::DecodedCode;
using pysample::sampler::Instruction;
using pysample::sampler::InstructionSet;

namespace {

constexpr std::size_t kVersions = 11;  // 2.7 and 3.6 to 3.15

std::vector<std::uint8_t> from_hex(const std::string& hex) {
    std::vector<std::uint8_t> out;
    for (std::size_t i = 0; i + 1 < hex.size(); i += 2) {
        out.push_back(static_cast<std::uint8_t>(std::stoi(hex.substr(i, 2), nullptr, 16)));
    }
    return out;
}

std::vector<std::filesystem::path> fixture_paths() {
    std::vector<std::filesystem::path> paths;
    for (const auto& entry : std::filesystem::directory_iterator(PYSAMPLE_FIXTURE_DIR)) {
        std::string name = entry.path().filename().string();
        if (name.starts_with("bytecode-") && name.ends_with(".json")) paths.push_back(entry.path());
    }
    std::sort(paths.begin(), paths.end());
    return paths;
}

std::function<std::optional<std::string>(std::uint32_t)> from_list(const nlohmann::json& list) {
    return [list](std::uint32_t i) -> std::optional<std::string> {
        if (i >= list.size() || list[i].is_null()) return std::nullopt;
        return list[i].get<std::string>();
    };
}

ArgumentNames names_of(const nlohmann::json& code) {
    return {from_list(code.at("consts")), from_list(code.at("names")), from_list(code.at("locals")),
            from_list(code.at("free"))};
}

bool is_jump(const InstructionSet& set, const Instruction& instruction) {
    auto kind = set.kinds[instruction.base];
    return kind == ArgKind::JumpForward || kind == ArgKind::JumpBackward || kind == ArgKind::JumpAbsolute;
}

// Checks a decoding against dis's listing of the same bytecode; `specialized` compares dis's names
// with the live opcode's, else with the base one's.
void check_listing(const InstructionSet& set, const DecodedCode& decoded, const nlohmann::json& code,
                   const nlohmann::json& listing, bool specialized, const std::string& where) {
    auto names = names_of(code);
    auto line_table = from_hex(code.at("linetable").get<std::string>());
    int first_line = code.at("firstlineno").get<int>();
    REQUIRE_MESSAGE(decoded.complete, where);
    REQUIRE_MESSAGE(decoded.instructions.size() == listing.size(), where);
    for (std::size_t i = 0; i < listing.size(); ++i) {
        const auto& want = listing[i];
        const Instruction& got = decoded.instructions[i];
        std::string at = where + " instruction " + std::to_string(i);
        CHECK_MESSAGE(got.offset == want[0].get<int>(), at);
        std::string name = specialized ? set.names[got.opcode] : pysample::sampler::base_name(set, got);
        CHECK_MESSAGE(name == want[1].get<std::string>(), at);
        std::string argument = pysample::sampler::argument_text(set, got, names);
        if (is_jump(set, got) && !want[3].is_null()) {
            CHECK_MESSAGE(argument == "to " + std::to_string(want[3].get<int>()), at << " " << name);
        } else if (!want[2].is_null() && set.kinds[got.base] != ArgKind::None &&
                   set.kinds[got.base] != ArgKind::Number && set.kinds[got.base] != ArgKind::SmallInt) {
            // A plain number dis shows in a column of its own, and some (flags, IS_OP's) as words.
            CHECK_MESSAGE(argument == want[2].get<std::string>(), at << " " << name);
        }
        if (want.size() > 4 && !want[4].is_null() && !line_table.empty()) {
            auto location = pysample::symbolize::location_for_offset(line_table, first_line, got.offset);
            auto expect = [](const nlohmann::json& value) { return value.is_null() ? -1 : value.get<int>(); };
            CHECK_MESSAGE(location.line == expect(want[4][0]), at);
            CHECK_MESSAGE(location.end_line == expect(want[4][1]), at);
            CHECK_MESSAGE(location.column == expect(want[4][2]), at);
            CHECK_MESSAGE(location.end_column == expect(want[4][3]), at);
        }
        // The decoded instruction covers every offset from its first prefix to its last cache.
        CHECK(decoded.at(got.start) == &got);
        CHECK(decoded.at(got.end - 1) == &got);
    }
}

}  // namespace

TEST_CASE("bytecode: every version's fixture decodes as its own dis lists it") {
    auto paths = fixture_paths();
    REQUIRE(paths.size() == kVersions);
    for (const auto& path : paths) {
        std::ifstream in(path);
        auto doc = nlohmann::json::parse(in);
        std::string version = doc.at("python_version").get<std::string>();
        int major = std::stoi(version.substr(0, version.find('.')));
        int minor = std::stoi(version.substr(version.find('.') + 1));
        const InstructionSet* set = pysample::sampler::instruction_set(major, minor);
        REQUIRE_MESSAGE(set != nullptr, version);
        bool saw_extended_arg = false;
        bool saw_specialized = false;
        bool has_adaptive = false;
        for (const auto& code : doc.at("code_objects")) {
            std::string where = version + " " + code.at("name").get<std::string>();
            auto bytes = from_hex(code.at("code").get<std::string>());
            auto decoded = decode_bytecode(*set, bytes);
            check_listing(*set, decoded, code, code.at("dis"), false, where);
            for (const auto& instruction : decoded.instructions) {
                saw_extended_arg |= instruction.start != instruction.offset;
            }
            if (code.contains("adaptive")) {
                has_adaptive = true;
                auto live = from_hex(code.at("adaptive").get<std::string>());
                auto adaptive = decode_bytecode(*set, live);
                check_listing(*set, adaptive, code, code.at("adaptive_dis"), true, where + " (adaptive)");
                for (const auto& instruction : adaptive.instructions) {
                    saw_specialized |= instruction.opcode != instruction.base;
                }
            }
        }
        // 2.7's 16-bit arguments need no prefix for the fixture's 270 constants.
        if (set->wordcode) CHECK_MESSAGE(saw_extended_arg, version << ": the fixture needs EXTENDED_ARG");
        if (has_adaptive) CHECK_MESSAGE(saw_specialized, version << ": warmed-up code holds specialized instructions");
    }
}

TEST_CASE("bytecode: an offset inside an instruction's caches or prefixes belongs to it") {
    const InstructionSet* set = pysample::sampler::instruction_set(3, 12);
    REQUIRE(set != nullptr);
    // LOAD_GLOBAL (4 caches) then RETURN_VALUE: 3.12's prev_instr may point at the last cache.
    std::uint8_t load_global = 0;
    std::uint8_t return_value = 0;
    for (int op = 0; op < 256; ++op) {
        if (std::string(set->names[op]) == "LOAD_GLOBAL") load_global = static_cast<std::uint8_t>(op);
        if (std::string(set->names[op]) == "RETURN_VALUE") return_value = static_cast<std::uint8_t>(op);
    }
    REQUIRE(set->caches[load_global] == 4);
    std::vector<std::uint8_t> code = {load_global, 0, 0xff, 0xff, 1, 2, 3, 4, 5, 6, return_value, 0};
    auto decoded = decode_bytecode(*set, code);
    REQUIRE(decoded.instructions.size() == 2);
    CHECK(decoded.at(8)->offset == 0);
    CHECK(decoded.at(10)->offset == 10);
    CHECK(decoded.at(12) == nullptr);
    CHECK(decoded.at(-2) == nullptr);
}

TEST_CASE("bytecode: decoding stops, saying so, at an instruction kept in monitoring data") {
    const InstructionSet* set = pysample::sampler::instruction_set(3, 13);
    REQUIRE(set != nullptr);
    REQUIRE(set->instrumented_line >= 0);
    std::vector<std::uint8_t> code = {static_cast<std::uint8_t>(set->instrumented_line), 0, 0, 0};
    auto decoded = decode_bytecode(*set, code);
    CHECK_FALSE(decoded.complete);
    CHECK(decoded.instructions.empty());
}

TEST_CASE("bytecode: torn bytecode never reads past its end") {
    for (auto [major, minor] : {std::pair{2, 7}, std::pair{3, 10}, std::pair{3, 14}}) {
        const InstructionSet* set = pysample::sampler::instruction_set(major, minor);
        REQUIRE(set != nullptr);
        std::vector<std::uint8_t> code = {static_cast<std::uint8_t>(set->extended_arg), 1, 2};
        auto decoded = decode_bytecode(*set, code);
        CHECK(decoded.instructions.empty());
    }
}
