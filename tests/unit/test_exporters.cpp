#include <doctest/doctest.h>
#include <zlib.h>

#include <sstream>

#include "exporters/exporters.hpp"
#include "sample_profiles.hpp"

using namespace pysample::exporters;
using pysample::exporters::testing::small_profile;

namespace {}  // namespace

TEST_CASE("collapsed output merges threads and lists each unique stack once, root first") {
    std::ostringstream out;
    write_collapsed(small_profile(), {}, out);
    CHECK(out.str() ==
          "<module> (/app/x.py:30);run (/app/x.py:12) 2\n"
          "<module> (/app/x.py:30);run (/app/x.py:12);Worker.work (/app/x.py:5) 8\n");
}

TEST_CASE("collapsed output with thread roots and without line numbers") {
    std::ostringstream out;
    WriteOptions options;
    options.thread_roots = true;
    options.line_numbers = false;
    write_collapsed(small_profile(), options, out);
    CHECK(out.str() ==
          "thread 100 (MainThread);<module> (/app/x.py);run (/app/x.py) 2\n"
          "thread 100 (MainThread);<module> (/app/x.py);run (/app/x.py);Worker.work (/app/x.py) 3\n"
          "thread 101 (worker);<module> (/app/x.py);run (/app/x.py);Worker.work (/app/x.py) 5\n");
}

TEST_CASE("separators inside names cannot break the folded format") {
    Profile profile;
    auto weird = profile.intern({"f;g\nh", "/a;b.py", 1});
    std::vector<FrameId> stack{weird};
    profile.add(profile.intern_thread({1, ""}), stack);
    std::ostringstream out;
    write_collapsed(profile, {}, out);
    CHECK(out.str() == "f:g\\x0ah (/a:b.py:1) 1\n");
}

TEST_CASE("collapsed output spells out control characters and line separators, and repairs UTF-8") {
    Profile profile;
    auto hostile = profile.intern(
        {std::string("nul\0\x1b[31m\r\x0b\xc2\x85\xe2\x80\xa8\xed\xb3\xbf\xff", 20), "/tmp/\xf0\x9f\x94\xa5.py", 2});
    std::vector<FrameId> stack{hostile};
    profile.add(profile.intern_thread({1, "t\nx"}), stack);
    WriteOptions options;
    options.thread_roots = true;
    std::ostringstream out;
    write_collapsed(profile, options, out);
    CHECK(out.str() ==
          "thread 1 (t\\x0ax);nul\\x00\\x1b[31m\\x0d\\x0b\\x85\\u2028\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd "
          "(/tmp/\xf0\x9f\x94\xa5.py:2) 1\n");
}

TEST_CASE("top functions rank by own samples and count recursion once in total") {
    Profile profile;
    auto t = profile.intern_thread({1, ""});
    auto f = profile.intern({"f", "a.py", 1});
    auto f2 = profile.intern({"f", "a.py", 2});
    auto g = profile.intern({"g", "a.py", 9});
    std::vector<FrameId> recursive{f, f2, g};
    std::vector<FrameId> leaf_f{f, f2};
    profile.add(t, recursive, 4);
    profile.add(t, leaf_f, 6);
    auto top = top_functions(profile, 10);
    REQUIRE(top.size() == 2);
    CHECK(top[0].function == "f");
    CHECK(top[0].own == 6);
    CHECK(top[0].total == 10);
    CHECK(top[1].function == "g");
    CHECK(top[1].own == 4);
}

TEST_CASE("profile keeps totals exact past its distinct-stack bound") {
    Profile profile(2);
    auto t = profile.intern_thread({1, ""});
    for (int i = 0; i < 5; ++i) {
        std::vector<FrameId> stack{profile.intern({"f" + std::to_string(i), "a.py", 1})};
        profile.add(t, stack);
    }
    CHECK(profile.total_count() == 5);
    CHECK(profile.distinct_stacks() == 3);
}

TEST_CASE("flamegraph SVG escapes names from the target") {
    Profile profile;
    std::vector<FrameId> stack{profile.intern({"<lambda>&\"'</script>", "/x.py", 3})};
    profile.add(profile.intern_thread({1, ""}), stack, 10);
    std::ostringstream out;
    write_flamegraph(profile, {}, out);
    std::string svg = out.str();
    CHECK(svg.find("&lt;lambda&gt;&amp;&quot;&apos;&lt;/script&gt;") != std::string::npos);
    // Only the SVG's own script element closes; the name's "</script>" is text.
    CHECK(svg.find("</script>") == svg.rfind("</script>"));
    CHECK(svg.find("<svg") != std::string::npos);
}

TEST_CASE("formats parse by name and pick extensions") {
    CHECK(format_for_path("x.speedscope.json") == Format::Speedscope);
    CHECK(format_for_path("x.json") == Format::Chrome);
    CHECK(format_for_path("x.prof.txt") == Format::Text);
    CHECK(format_for_path("x.txt") == Format::Collapsed);
    CHECK(format_for_path("x.prof") == Format::Pstats);
    CHECK_FALSE(format_for_path("x.bin"));
    CHECK(parse_format("collapsed") == Format::Collapsed);
    CHECK(parse_format("flamegraph") == Format::Flamegraph);
    CHECK_FALSE(parse_format("bogus"));
    CHECK(default_extension(Format::Flamegraph) == ".svg");
    CHECK(format_for_path("x.pb.gz") == Format::Pprof);
    CHECK(format_for_path("x.pprof") == Format::Pprof);
    CHECK(format_for_path("dir/callgrind.out.1234") == Format::Callgrind);
    CHECK(format_for_path("x.callgrind") == Format::Callgrind);
    CHECK_FALSE(format_for_path("callgrind.out/x.bin"));
    CHECK(parse_format("pprof") == Format::Pprof);
    CHECK(parse_format("callgrind") == Format::Callgrind);
    CHECK(format_for_path(std::string("x") + std::string(default_extension(Format::Callgrind))) == Format::Callgrind);
    CHECK(format_for_path(std::string("x") + std::string(default_extension(Format::Pprof))) == Format::Pprof);
}

TEST_CASE("callgrind: a recursive function's calls cost each sample once, and namesakes stay apart") {
    Profile profile;
    auto t = profile.intern_thread({1, "main"});
    FrameId main = profile.intern({"main", "x.py", 20, 19});
    FrameId f = profile.intern({"f", "x.py", 3, 1});
    FrameId f_again = profile.intern({"f", "x.py", 4, 1});
    FrameId g = profile.intern({"g", "x.py", 10, 9});
    FrameId other_f = profile.intern({"f", "x.py", 31, 30});       // another f in the same file
    profile.add(t, std::vector<FrameId>{main, f, g, f_again}, 5);  // f -> g -> f, innermost f
    profile.add(t, std::vector<FrameId>{main, other_f}, 2);
    std::ostringstream out;
    write_callgrind(profile, {}, out);
    std::string text = out.str();
    INFO(text);
    CHECK(text.find("events: Samples\n") != std::string::npos);
    CHECK(text.find("summary: 7\n") != std::string::npos);
    // Own samples of f at line 4; the call main -> f costs 5, g -> f nothing (f is already below).
    CHECK(text.find("fn=(2)\n4 5\n") != std::string::npos);
    CHECK(text.find("calls=5 1\n20 5\n") != std::string::npos);
    CHECK(text.find("cfn=(2)\ncalls") == std::string::npos);
    CHECK(text.find("f'30") != std::string::npos);
}

TEST_CASE("pprof: gzip-compressed, with the run's sample types and names pprof keeps whole") {
    Profile profile;
    profile.info.rate_hz = 100;
    profile.info.counting = "wall-clock time";
    auto t = profile.intern_thread({7, "worker"});
    profile.add(t, std::vector<FrameId>{profile.intern({"<module>", "x.py", 5, 1})}, 3);
    std::ostringstream out;
    write_pprof(profile, {}, out);
    std::string bytes = out.str();
    REQUIRE(bytes.size() > 20);
    CHECK(static_cast<unsigned char>(bytes[0]) == 0x1f);
    CHECK(static_cast<unsigned char>(bytes[1]) == 0x8b);
    std::string plain(4096, '\0');
    z_stream stream{};
    REQUIRE(inflateInit2(&stream, 15 + 16) == Z_OK);
    stream.next_in = reinterpret_cast<Bytef*>(bytes.data());
    stream.avail_in = static_cast<uInt>(bytes.size());
    stream.next_out = reinterpret_cast<Bytef*>(plain.data());
    stream.avail_out = static_cast<uInt>(plain.size());
    CHECK(inflate(&stream, Z_FINISH) == Z_STREAM_END);
    plain.resize(stream.total_out);
    inflateEnd(&stream);
    for (const char* text : {"samples", "count", "wall", "nanoseconds", "<module>", "x.py", "thread_name", "worker"}) {
        CHECK_MESSAGE(plain.find(text) != std::string::npos, text);
    }
    // The string table names "<module>" once: no system name equal to it, which pprof would demangle.
    CHECK(plain.find("<module>") == plain.rfind("<module>"));
}

TEST_CASE("the timeline records each timed sample against its stack id, in order") {
    Profile profile;
    auto t1 = profile.intern_thread({1, "a"});
    auto t2 = profile.intern_thread({2, "b"});
    std::vector<FrameId> f{profile.intern({"f", "x.py", 3, 1})};
    std::vector<FrameId> g{profile.intern({"g", "x.py", 9, 8})};
    auto first = profile.add_at(100, t1, f);
    auto second = profile.add_at(100, t2, g);
    auto again = profile.add_at(200, t1, f);
    CHECK(first == again);
    CHECK(first != second);
    REQUIRE(profile.timeline().size() == 3);
    CHECK(profile.timeline()[1].time_us == 100);
    CHECK(profile.timeline()[1].stack == second);
    CHECK(profile.stacks()[first].count == 2);
    CHECK(profile.stacks()[second].thread == t2);
    CHECK(profile.timeline_complete());
    CHECK(profile.frame(g[0]).first_line == 8);
}

TEST_CASE("a repeated stack is counted again by id, and the timeline can be left out") {
    Profile profile;
    profile.keep_timeline(false);
    auto t = profile.intern_thread({1, ""});
    std::vector<FrameId> f{profile.intern({"f", "x.py", 3, 1})};
    auto id = profile.add_at(10, t, f);
    profile.add_again(20, id);
    profile.add_again(30, id);
    CHECK(profile.stacks()[id].count == 3);
    CHECK(profile.total_count() == 3);
    CHECK(profile.distinct_stacks() == 1);
    CHECK(profile.timeline().empty());
    CHECK_FALSE(profile.timeline_complete());
    CHECK(shows_time_order(Format::Chrome));
    CHECK(shows_time_order(Format::Speedscope));
    CHECK_FALSE(shows_time_order(Format::Flamegraph));
}

TEST_CASE("the timeline stops at its bound and says so, while counts stay exact") {
    Profile profile(100, 2);
    auto t = profile.intern_thread({1, ""});
    std::vector<FrameId> f{profile.intern({"f", "x.py", 3, 1})};
    for (std::uint64_t i = 0; i < 5; ++i) profile.add_at(i * 10, t, f);
    CHECK(profile.timeline().size() == 2);
    CHECK_FALSE(profile.timeline_complete());
    CHECK(profile.total_count() == 5);
}

TEST_CASE("the interval follows the rate") {
    RunInfo info;
    info.rate_hz = 250;
    CHECK(info.interval_s() == doctest::Approx(0.004));
}

TEST_CASE("annotate: each line's own and total share, recursion counted once, long gaps cut") {
    Profile profile;
    auto t = profile.intern_thread({1, "main"});
    FrameId main = profile.intern({"main", "x.py", 28, 19});
    FrameId f = profile.intern({"f", "x.py", 3, 1});
    FrameId f_again = profile.intern({"f", "x.py", 3, 1});
    FrameId g = profile.intern({"g", "x.py", 10, 9});
    profile.add(t, std::vector<FrameId>{main, f, g, f_again}, 6);  // f -> g -> f: f's line 3 once per sample
    profile.add(t, std::vector<FrameId>{main}, 4);
    std::string source;
    for (int line = 1; line <= 30; ++line) source += "line" + std::to_string(line) + "\n";
    profile.sources["x.py"] = {SourceFile::State::Read, source, ""};
    std::ostringstream out;
    WriteOptions options;
    options.top = 2;
    write_annotate(profile, options, out);
    std::string text = out.str();
    CHECK(text.find("10 samples, the 2 functions") != std::string::npos);
    CHECK(text.find("main (x.py:19): total 100.0%, own 40.0%") != std::string::npos);
    CHECK(text.find("f (x.py:1): total 60.0%, own 60.0%") != std::string::npos);
    CHECK(text.find("   40.0%  100.0%    28  line28") != std::string::npos);
    CHECK(text.find("   60.0%   60.0%     3  line3") != std::string::npos);
    CHECK(text.find("                     1  line1") != std::string::npos);               // the def line
    CHECK(text.find("    19  line19\n                     ...\n") != std::string::npos);  // 20-25 cut
    CHECK(text.find("g (x.py") == std::string::npos);                                     // not in the top 2
}

TEST_CASE("annotate: a changed or missing source is said, and lines still show their shares") {
    Profile profile;
    auto t = profile.intern_thread({1, "main"});
    profile.add(t, std::vector<FrameId>{profile.intern({"f", "gone.py", 5, 4})}, 3);
    profile.sources["gone.py"] = {SourceFile::State::Missing, "", "source not found"};
    std::ostringstream out;
    write_annotate(profile, {}, out);
    CHECK(out.str().find("[source not found]") != std::string::npos);
    CHECK(out.str().find("  100.0%  100.0%     5  \n") != std::string::npos);
    CHECK(format_for_path("x.annotate.txt") == Format::Annotate);
    CHECK(parse_format("annotate") == Format::Annotate);
}
