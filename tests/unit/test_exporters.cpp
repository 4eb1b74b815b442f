#include <doctest/doctest.h>

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
