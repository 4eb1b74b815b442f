#include <doctest/doctest.h>

#include <sstream>
#include <string>
#include <vector>

#include "exporters/exporters.hpp"

using namespace pysample::exporters;

namespace {

// <module> calls f and b, b calls f, f recurses: f has three callers (<module>, b and itself).
// Two frames of f differ only in the sampled line and must merge into one function.
// 4 Hz makes every time an exact binary fraction.
Profile recursive_profile() {
    Profile profile;
    auto thread = profile.intern_thread({1, "MainThread"});
    auto module = profile.intern({"<module>", "a.py", 9, 1});
    auto f_line3 = profile.intern({"f", "a.py", 3, 2});
    auto f_line4 = profile.intern({"f", "a.py", 4, 2});
    auto b = profile.intern({"b", "a.py", 7, 6});
    profile.add(thread, std::vector<FrameId>{module, f_line3, f_line4}, 2);
    profile.add(thread, std::vector<FrameId>{module, f_line3}, 1);
    profile.add(thread, std::vector<FrameId>{module}, 1);
    profile.add(thread, std::vector<FrameId>{module, b, f_line3}, 1);
    profile.info.rate_hz = 4;
    profile.info.pid = 42;
    profile.info.command_line = "python3 a.py";
    return profile;
}

std::string from_hex(std::string_view hex) {
    std::string bytes;
    for (std::size_t i = 0; i + 1 < hex.size(); i += 2) {
        bytes += static_cast<char>(std::stoi(std::string(hex.substr(i, 2)), nullptr, 16));
    }
    return bytes;
}

std::string pstats_bytes(const Profile& profile) {
    std::ostringstream out;
    write_pstats(profile, {}, out);
    return out.str();
}

std::string text_output(const Profile& profile, SortKey sort, std::size_t top = 0) {
    WriteOptions options;
    options.sort = sort;
    options.top = top;
    std::ostringstream out;
    write_text(profile, options, out);
    return out.str();
}

const std::string kNote =
    "   samples: how many samples saw the function (a sampler sees no calls); own% and total%: its share of them, "
    "running itself and anywhere on the stack\n\n";
const std::string kHeader = "         5 samples in 1.250 seconds (pid 42: python3 a.py)\n" + kNote;
const std::string kTitle = "\n  samples  tottime     own%  cumtime   total% filename:lineno(function)\n";
const std::string kModuleRow = "        5    0.250   20.00%    1.250  100.00% a.py:1(<module>)\n";
const std::string kFRow = "        4    1.000   80.00%    1.000   80.00% a.py:2(f)\n";
const std::string kBRow = "        1    0.000    0.00%    0.250   20.00% a.py:6(b)\n";

}  // namespace

TEST_CASE("pstats output is the marshalled cProfile stats dict, with no call counts") {
    // marshal.dumps(d, 2) of
    // {('a.py', 1, '<module>'): (0, 0, 0.25, 1.25, {}),
    //  ('a.py', 2, 'f'): (0, 0, 1.0, 1.0, {('a.py', 1, '<module>'): (0, 0, 0.25, 0.75),
    //                                      ('a.py', 2, 'f'): (0, 0, 0.5, 0.5),
    //                                      ('a.py', 6, 'b'): (0, 0, 0.25, 0.25)}),
    //  ('a.py', 6, 'b'): (0, 0, 0.0, 0.25, {('a.py', 1, '<module>'): (0, 0, 0.0, 0.25)})}
    // A sampler sees no calls: ncalls 0, which pstats prints with a blank "percall".
    const std::string expected = from_hex(
        "7b28030000007504000000612e7079690100000075080000003c6d6f64756c653e280500000069000000006900000000"
        "67000000000000d03f67000000000000f43f7b3028030000007504000000612e70796902000000750100000066280500"
        "00006900000000690000000067000000000000f03f67000000000000f03f7b28030000007504000000612e7079690100"
        "000075080000003c6d6f64756c653e28040000006900000000690000000067000000000000d03f67000000000000e83f"
        "28030000007504000000612e7079690200000075010000006628040000006900000000690000000067000000000000e0"
        "3f67000000000000e03f28030000007504000000612e7079690600000075010000006228040000006900000000690000"
        "000067000000000000d03f67000000000000d03f3028030000007504000000612e707969060000007501000000622805"
        "0000006900000000690000000067000000000000000067000000000000d03f7b28030000007504000000612e70796901"
        "00000075080000003c6d6f64756c653e28040000006900000000690000000067000000000000000067000000000000d0"
        "3f3030");
    CHECK(pstats_bytes(recursive_profile()) == expected);
}

TEST_CASE("pstats keys a function by co_name, as cProfile does, where the profile shows its qualified name") {
    Profile profile;
    auto thread = profile.intern_thread({1, ""});
    profile.add(thread, std::vector<FrameId>{profile.intern({"Worker.run", "a.py", 9, 8, false, "run"})}, 1);
    profile.info.rate_hz = 4;
    // marshal.dumps({('a.py', 8, 'run'): (0, 0, 0.25, 0.25, {})}, 2)
    CHECK(pstats_bytes(profile) ==
          from_hex("7b28030000007504000000612e70796908000000750300000072756e28050000006900000000690000000067000000"
                   "000000d03f67000000000000d03f7b3030"));
}

TEST_CASE("pstats times of counts beyond 32 bits") {
    Profile profile;
    auto thread = profile.intern_thread({1, ""});
    profile.add(thread, std::vector<FrameId>{profile.intern({"<module>", "a.py", 9, 1})}, 3'000'000'000ULL);
    profile.info.rate_hz = 4;
    // marshal.dumps({('a.py', 1, '<module>'): (0, 0, 750000000.0, 750000000.0, {})}, 2)
    CHECK(pstats_bytes(profile) ==
          from_hex("7b28030000007504000000612e7079690100000075080000003c6d6f64756c653e2805000000690000000069000000"
                   "0067000000c00b5ac64167000000c00b5ac6417b3030"));
}

TEST_CASE("pstats output turns invalid UTF-8 into replacement characters and keeps quotes and newlines") {
    Profile profile;
    auto thread = profile.intern_thread({1, ""});
    profile.add(thread, std::vector<FrameId>{profile.intern({"bad\xff\"q\"\n", "trunc\xc3", 7, 6})}, 1);
    profile.info.rate_hz = 4;
    // marshal.dumps({('trunc\ufffd', 6, 'bad\ufffd"q"\n'): (0, 0, 0.25, 0.25, {})}, 2)
    CHECK(pstats_bytes(profile) ==
          from_hex("7b280300000075080000007472756e63efbfbd6906000000750a000000626164efbfbd2271220a280500000069000000"
                   "00690000000067000000000000d03f67000000000000d03f7b3030"));
}

TEST_CASE("pstats output of an empty profile is an empty dict") { CHECK(pstats_bytes(Profile{}) == "{0"); }

TEST_CASE("text output sorted by internal time") {
    CHECK(text_output(recursive_profile(), SortKey::Tottime) ==
          kHeader + "   Ordered by: internal time\n" + kTitle + kFRow + kModuleRow + kBRow + "\n\n");
}

TEST_CASE("text output sorted by cumulative time") {
    CHECK(text_output(recursive_profile(), SortKey::Cumtime) ==
          kHeader + "   Ordered by: cumulative time\n" + kTitle + kModuleRow + kFRow + kBRow + "\n\n");
}

TEST_CASE("text output sorted by sample count (ncalls)") {
    CHECK(text_output(recursive_profile(), SortKey::Ncalls) ==
          kHeader + "   Ordered by: sample count\n" + kTitle + kModuleRow + kFRow + kBRow + "\n\n");
}

TEST_CASE("text output sorted by function name") {
    CHECK(text_output(recursive_profile(), SortKey::Name) ==
          kHeader + "   Ordered by: function name\n" + kTitle + kModuleRow + kBRow + kFRow + "\n\n");
}

TEST_CASE("text output limited to the top rows says so as pstats does") {
    CHECK(text_output(recursive_profile(), SortKey::Tottime, 2) ==
          kHeader + "   Ordered by: internal time\n   List reduced from 3 to 2 due to restriction <2>\n" + kTitle +
              kFRow + kModuleRow + "\n\n");
    CHECK(text_output(recursive_profile(), SortKey::Tottime, 3) == text_output(recursive_profile(), SortKey::Tottime));
}

TEST_CASE("text output breaks ties by file, line and function") {
    Profile profile;
    auto thread = profile.intern_thread({1, ""});
    auto module = profile.intern({"<module>", "a.py", 1, 1});
    for (const char* name : {"z", "y", "x"}) {
        profile.add(thread, std::vector<FrameId>{module, profile.intern({name, "b.py", 5, 5})}, 1);
    }
    profile.info.rate_hz = 4;
    const std::string rows =
        "        1    0.250   33.33%    0.250   33.33% b.py:5(x)\n"
        "        1    0.250   33.33%    0.250   33.33% b.py:5(y)\n"
        "        1    0.250   33.33%    0.250   33.33% b.py:5(z)\n";
    CHECK(text_output(profile, SortKey::Tottime) ==
          "         3 samples in 0.750 seconds\n" + kNote + "   Ordered by: internal time\n" + kTitle + rows +
              "        3    0.000    0.00%    0.750  100.00% a.py:1(<module>)\n\n\n");
}

TEST_CASE("text output keeps hostile names on one valid UTF-8 row each") {
    Profile profile;
    auto thread = profile.intern_thread({1, ""});
    auto module = profile.intern({"<module>", "/tmp/\xc3\xa9t\xc3\xa9/x.py", 9, 1});
    auto quoted = profile.intern({"it's \"q\"\nx", "/tmp/\xc3\xa9t\xc3\xa9/x.py", 3, 2});
    auto invalid = profile.intern({"bad\xff\xfename", "trunc\xc3", 7, 6});
    auto native = profile.intern({"<native>", "", 0, 0});
    profile.add(thread, std::vector<FrameId>{module, quoted, invalid, native}, 1);
    profile.info.rate_hz = 4;
    profile.info.pid = 7;
    profile.info.command_line = "python3 \"a b\".py\n\xff";
    CHECK(text_output(profile, SortKey::Tottime) ==
          "         1 samples in 0.250 seconds (pid 7: python3 \"a b\".py\\x0a\xef\xbf\xbd)\n" + kNote +
              "   Ordered by: internal time\n" + kTitle +
              "        1    0.250  100.00%    0.250  100.00% {native}\n"
              "        1    0.000    0.00%    0.250  100.00% /tmp/\xc3\xa9t\xc3\xa9/x.py:1(<module>)\n"
              "        1    0.000    0.00%    0.250  100.00% /tmp/\xc3\xa9t\xc3\xa9/x.py:2(it's \"q\"\\x0ax)\n"
              "        1    0.000    0.00%    0.250  100.00% trunc\xef\xbf\xbd:6(bad\xef\xbf\xbd\xef\xbf\xbdname)\n"
              "\n\n");
}

TEST_CASE("text output of an empty profile is the summary line alone") {
    CHECK(text_output(Profile{}, SortKey::Tottime) == "         0 samples in 0.000 seconds\n\n");
}
