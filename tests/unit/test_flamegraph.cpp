#include <doctest/doctest.h>

#include <sstream>
#include <string>
#include <vector>

#include "exporters/exporters.hpp"
#include "sample_profiles.hpp"

using namespace pysample::exporters;

namespace {

// The shared two-thread profile with the run information the title shows.
Profile small_profile() {
    Profile profile = pysample::exporters::testing::small_profile();
    profile.info.pid = 4242;
    profile.info.command_line = "python3 app.py --fast";
    profile.info.python_version = "3.12.1";
    profile.info.rate_hz = 100;
    profile.info.duration_s = 0.1;
    profile.info.samples = 12;
    profile.info.errors = 2;
    return profile;
}

std::string flamegraph(const Profile& profile, const WriteOptions& options = {}) {
    std::ostringstream out;
    write_flamegraph(profile, options, out);
    return out.str();
}

std::size_t occurrences(const std::string& text, const std::string& part) {
    std::size_t count = 0;
    for (auto at = text.find(part); at != std::string::npos; at = text.find(part, at + part.size())) ++count;
    return count;
}

// The value of `attribute` in the first element after the frame whose title starts with `title`.
std::string frame_attribute(const std::string& svg, const std::string& title, const std::string& attribute) {
    auto frame = svg.find("<title>" + title);
    REQUIRE(frame != std::string::npos);
    auto start = svg.find(" " + attribute + "=\"", frame);
    REQUIRE(start != std::string::npos);
    start += attribute.size() + 3;
    return svg.substr(start, svg.find('"', start) - start);
}

double frame_y(const std::string& svg, const std::string& title) { return std::stod(frame_attribute(svg, title, "y")); }

std::string script_of(const std::string& svg) {
    auto start = svg.find("<![CDATA[");
    auto end = svg.find("]]>", start);
    REQUIRE(start != std::string::npos);
    REQUIRE(end != std::string::npos);
    return svg.substr(start, end - start);
}

}  // namespace

TEST_CASE("flamegraph: one self-contained SVG document with its script and every frame") {
    std::string svg = flamegraph(small_profile());
    CHECK(svg.rfind("<?xml version=\"1.0\" encoding=\"UTF-8\"", 0) == 0);
    CHECK(occurrences(svg, "<svg") == 1);
    CHECK(svg.ends_with("</svg>\n"));
    CHECK(occurrences(svg, "<script type=\"text/ecmascript\"><![CDATA[") == 1);
    CHECK(occurrences(svg, "]]></script>") == 1);
    CHECK(svg.find("http://www.w3.org/2000/svg") != std::string::npos);
    CHECK(svg.find("href") == std::string::npos);  // nothing loaded from elsewhere
    CHECK(svg.find("@import") == std::string::npos);
    CHECK(svg.find("id=\"search\"") != std::string::npos);
    CHECK(svg.find("id=\"zoom\"") != std::string::npos);
    CHECK(svg.find("id=\"details\"") != std::string::npos);

    // Threads merge without thread roots: 4 frames (all, <module>, run, Worker.work).
    CHECK(occurrences(svg, "<g data-o=") == 4);
    CHECK(svg.find("<title>all&#10;10 samples, 100%</title>") != std::string::npos);
    CHECK(svg.find("<title>&lt;module&gt; (/app/x.py:30)&#10;10 samples, 100%</title>") != std::string::npos);
    CHECK(svg.find("<title>run (/app/x.py:12)&#10;10 samples, 100%</title>") != std::string::npos);
    CHECK(svg.find("<title>Worker.work (/app/x.py:5)&#10;8 samples, 80%</title>") != std::string::npos);
    // Boxes show the file's base name; the title keeps the path.
    CHECK(svg.find(">Worker.work (x.py:5)</text>") != std::string::npos);
}

TEST_CASE("flamegraph: title and subtitle describe the run") {
    WriteOptions options;
    options.version = "9.9.9";
    std::string svg = flamegraph(small_profile(), options);
    CHECK(svg.find("python3 app.py --fast (pid 4242): 12 samples in 0.1 s at 100 Hz") != std::string::npos);
    CHECK(svg.find("Python 3.12.1") != std::string::npos);
    CHECK(svg.find("2 errors (16.67% of samples)") != std::string::npos);
    CHECK(svg.find("pysample 9.9.9") != std::string::npos);
}

TEST_CASE("flamegraph: thread roots are their own, distinct frames") {
    WriteOptions options;
    options.thread_roots = true;
    std::string svg = flamegraph(small_profile(), options);
    CHECK(svg.find("<g class=\"t\" data-o=\"0\"><title>thread 100 (MainThread)&#10;5 samples, 50%</title>") !=
          std::string::npos);
    CHECK(svg.find("<title>thread 101 (worker)&#10;5 samples, 50%</title>") != std::string::npos);
    CHECK(occurrences(svg, "<title>Worker.work (/app/x.py:5)&#10;") == 2);
    std::string thread_fill = frame_attribute(svg, "thread 100", "fill");
    CHECK(thread_fill == frame_attribute(svg, "thread 101", "fill"));
    CHECK(thread_fill != frame_attribute(svg, "run (", "fill"));
    CHECK(thread_fill != frame_attribute(svg, "all&#10;", "fill"));
}

TEST_CASE("flamegraph: without line numbers, lines of one function share a frame") {
    Profile profile;
    auto t = profile.intern_thread({1, ""});
    std::vector<FrameId> at_3{profile.intern({"f", "a.py", 3})};
    std::vector<FrameId> at_9{profile.intern({"f", "a.py", 9})};
    profile.add(t, at_3, 1);
    profile.add(t, at_9, 2);
    WriteOptions options;
    options.line_numbers = false;
    std::string svg = flamegraph(profile, options);
    CHECK(svg.find("<title>f (a.py)&#10;3 samples, 100%</title>") != std::string::npos);
    CHECK(occurrences(svg, "<g data-o=") == 2);
}

TEST_CASE("flamegraph: names from the target are text, never markup or script") {
    const std::string hostile = "<lambda>&\"'</script>]]>\x07tab\there caf\xC3\xA9 bad\xFF";
    Profile profile;
    auto thread = profile.intern_thread({7, "</script><script>alert(1)</script>"});
    std::vector<FrameId> stack{profile.intern({hostile, "/tmp/</script>/&x.py", 3}),
                               profile.intern({"leaf", "/tmp/ok.py", 1})};
    profile.add(thread, stack, 10);
    profile.info.command_line = "python3 -c 'print(\"]]></script>\")' \x1b[31m";
    profile.info.python_version = "3.12<b>";
    WriteOptions options;
    options.thread_roots = true;
    std::string svg = flamegraph(profile, options);

    CHECK(
        svg.find("&lt;lambda&gt;&amp;&quot;&apos;&lt;/script&gt;]]&gt;\\x07tab\\x09here caf\xC3\xA9 bad\xEF\xBF\xBD") !=
        std::string::npos);
    CHECK(svg.find("/tmp/&lt;/script&gt;/&amp;x.py:3") != std::string::npos);
    CHECK(svg.find("&lt;/script&gt;&lt;script&gt;alert(1)&lt;/script&gt;") != std::string::npos);
    CHECK(svg.find("\\x1b[31m") != std::string::npos);
    CHECK(svg.find("Python 3.12&lt;b&gt;") != std::string::npos);
    // Only our own script element and CDATA section, and the script holds no target string.
    CHECK(occurrences(svg, "</script>") == 1);
    CHECK(occurrences(svg, "]]>") == 1);
    CHECK(occurrences(svg, "<script") == 1);
    CHECK(script_of(svg).find("lambda") == std::string::npos);
    CHECK(script_of(svg).find("alert") == std::string::npos);
    // No control characters besides line ends, and no invalid UTF-8 byte.
    for (unsigned char c : svg) {
        CHECK_MESSAGE((c >= 0x20 || c == '\n'), "control character ", static_cast<int>(c));
        CHECK(c != 0xFF);
    }
}

TEST_CASE("flamegraph: malformed UTF-8 becomes U+FFFD, well-formed text of any script stays") {
    Profile profile;
    std::vector<FrameId> stack{
        profile.intern({"ok_\xE6\x97\xA5\xF0\x9F\x94\xA5"
                        "_\xC0\xAF_\xED\xA0\x80_\xFC\x80\x80\x80\x80_\xE6\x97",
                        "m.py", 1})};
    profile.add(profile.intern_thread({1, ""}), stack, 1);
    std::string svg = flamegraph(profile);
    // Overlong "/", a UTF-16 surrogate, a 6-byte form and a cut-off sequence: one U+FFFD per byte.
    const std::string bad = "\xEF\xBF\xBD";
    CHECK(svg.find("ok_\xE6\x97\xA5\xF0\x9F\x94\xA5_" + bad + bad + "_" + bad + bad + bad + "_" + bad + bad + bad +
                   bad + bad + "_" + bad + bad + " (m.py:1)") != std::string::npos);
}

TEST_CASE("flamegraph: reverse puts the root on top") {
    Profile profile = small_profile();
    std::string flame = flamegraph(profile);
    WriteOptions options;
    options.reverse = true;
    std::string icicle = flamegraph(profile, options);
    CHECK(frame_y(flame, "all&#10;") > frame_y(flame, "run ("));
    CHECK(frame_y(flame, "run (") > frame_y(flame, "Worker.work ("));
    CHECK(frame_y(icicle, "all&#10;") < frame_y(icicle, "run ("));
    CHECK(frame_y(icicle, "run (") < frame_y(icicle, "Worker.work ("));
    CHECK(frame_y(icicle, "all&#10;") == frame_y(flame, "Worker.work ("));
}

TEST_CASE("flamegraph: frames too narrow to see are merged or left out") {
    Profile profile;
    auto t = profile.intern_thread({1, ""});
    auto hub = profile.intern({"hub", "/app/hub.py", 1});
    std::vector<FrameId> big{hub, profile.intern({"big", "/app/big.py", 1})};
    profile.add(t, big, 10000);
    for (int i = 0; i < 3000; ++i) {
        std::vector<FrameId> tiny{hub, profile.intern({"tiny_" + std::to_string(1000 + i), "/app/tiny.py", 1})};
        profile.add(t, tiny, 1);
    }
    // A single narrow frame between wide siblings ("aa" < "big" < "tiny_...") is left out.
    std::vector<FrameId> lone{hub, profile.intern({"aa_lone", "/app/lone.py", 1})};
    profile.add(t, lone, 1);
    std::string svg = flamegraph(profile);
    CHECK(svg.find("tiny_") == std::string::npos);
    CHECK(svg.find("aa_lone") == std::string::npos);
    CHECK(svg.find("<title>[3000 small frames]&#10;3000 samples, 23.08%") != std::string::npos);
    CHECK(svg.find("<title>big (/app/big.py:1)&#10;10000 samples") != std::string::npos);
    // all, hub, big and the merged box.
    CHECK(occurrences(svg, "<g ") - occurrences(svg, "<g id=") == 4);
}

TEST_CASE("flamegraph: 100k distinct stacks stay a few MB") {
    Profile profile;
    auto t = profile.intern_thread({1, ""});
    auto module = profile.intern({"<module>", "/app/main.py", 1});
    for (int i = 0; i < 100000; ++i) {
        std::vector<FrameId> stack{module,
                                   profile.intern({"handler_" + std::to_string(i % 40), "/app/handlers.py", i % 40}),
                                   profile.intern({"step_" + std::to_string(i % 700), "/app/steps.py", i % 7}),
                                   profile.intern({"query_" + std::to_string(i % 9000), "/app/db.py", i % 11}),
                                   profile.intern({"leaf_" + std::to_string(i), "/app/leaf.py", 1})};
        profile.add(t, stack, 1 + static_cast<std::uint64_t>(i % 5));
    }
    REQUIRE(profile.distinct_stacks() == 100000);
    std::string svg = flamegraph(profile);
    MESSAGE("100k-stack flamegraph: ", svg.size(), " bytes, ", occurrences(svg, "<g data-o="), " frames");
    CHECK(svg.size() < 3'000'000);
    CHECK(svg.find("leaf_") == std::string::npos);
    CHECK(svg.find("handler_7 (/app/handlers.py:7)") != std::string::npos);
}

TEST_CASE("flamegraph: a file keeps its colour across profiles, and output is deterministic") {
    Profile first;
    auto t = first.intern_thread({1, ""});
    std::vector<FrameId> a{first.intern({"main", "/app/main.py", 1}), first.intern({"compute", "/app/mod.py", 5})};
    first.add(t, a, 3);

    Profile second;
    auto u = second.intern_thread({9, "other"});
    std::vector<FrameId> b{second.intern({"other", "/lib/other.py", 2}), second.intern({"compute", "/app/mod.py", 5}),
                           second.intern({"helper", "/lib/helper.py", 8})};
    second.add(u, b, 17);

    std::string one = flamegraph(first);
    std::string two = flamegraph(second);
    CHECK(frame_attribute(one, "compute (", "fill") == frame_attribute(two, "compute (", "fill"));
    CHECK(frame_attribute(one, "compute (", "fill").size() == 7);  // #rrggbb
    CHECK(frame_attribute(one, "main (", "fill") != frame_attribute(one, "compute (", "fill"));
    CHECK(flamegraph(first) == one);
}

TEST_CASE("flamegraph: an empty profile still makes a valid drawing") {
    Profile profile;
    std::string svg = flamegraph(profile);
    CHECK(svg.find("<title>all&#10;0 samples, 0%</title>") != std::string::npos);
    for (const char* bad : {"=\"nan", "=\"-nan", "=\"inf", "=\"-inf"}) CHECK(svg.find(bad) == std::string::npos);
    CHECK(svg.ends_with("</svg>\n"));
}

namespace {

// `a` samples of main -> a, `b` of main -> b, `c` of main -> c (none: the stack is not there).
Profile three_way(std::uint64_t a, std::uint64_t b, std::uint64_t c) {
    Profile profile;
    auto thread = profile.intern_thread({1, "main"});
    FrameId main = profile.intern({"main", "w.py", 9, 8});
    for (auto [name, count] : {std::pair{"a", a}, std::pair{"b", b}, std::pair{"c", c}}) {
        if (count == 0) continue;
        profile.add(thread, std::vector<FrameId>{main, profile.intern({name, "w.py", 2, 1})}, count);
    }
    return profile;
}

// The fill and tooltip of the frame whose title starts with `label`.
std::pair<std::string, std::string> drawn(const std::string& svg, const std::string& label) {
    auto title = svg.find("<title>" + label);
    REQUIRE(title != std::string::npos);
    auto fill = svg.find("fill=\"", title);
    return {svg.substr(fill + 6, 7), svg.substr(title + 7, svg.find("</title>", title) - title - 7)};
}

}  // namespace

TEST_CASE("flamegraph: a differential one colours each frame by the change of its share, and lists what is gone") {
    Profile base = three_way(2000, 6000, 2000);
    Profile changed = three_way(8000, 0, 2000);
    WriteOptions options;
    options.line_numbers = false;
    options.diff_base = &base;
    options.diff_names = "before -> after";
    std::ostringstream out;
    write_flamegraph(changed, options, out);
    std::string svg = out.str();
    auto [a_fill, a_title] = drawn(svg, "a (w.py)");
    CHECK(a_fill.starts_with("#ff"));
    CHECK(a_fill != "#ffffff");
    CHECK(a_title.find("20.00% in the base, 80.00% now: +60.00 points") != std::string::npos);
    auto [c_fill, c_title] = drawn(svg, "c (w.py)");
    CHECK(c_fill == "#ffffff");
    CHECK(c_title.find("+0.00 points") != std::string::npos);
    CHECK(svg.find("Gone since the base (1 stack):") != std::string::npos);
    CHECK(svg.find("60% of the base: main (w.py);b (w.py)") != std::string::npos);
    CHECK(svg.find("Differential flame graph of before -&gt; after") != std::string::npos);

    // The other way round, a shrinks: blue.
    options.diff_base = &changed;
    std::ostringstream back;
    write_flamegraph(base, options, back);
    auto [shrunk, _] = drawn(back.str(), "a (w.py)");
    CHECK(shrunk.ends_with("ff"));
    CHECK_FALSE(shrunk.starts_with("#ff"));
}

TEST_CASE("flamegraph: a change that sampling explains is white") {
    Profile base = three_way(50, 50, 0);
    Profile changed = three_way(53, 47, 0);  // 3 points on 100 samples: well within noise
    WriteOptions options;
    options.diff_base = &base;
    std::ostringstream out;
    write_flamegraph(changed, options, out);
    auto [fill, title] = drawn(out.str(), "a (w.py:2)");
    CHECK(fill == "#ffffff");
    CHECK(title.find("within sampling noise") != std::string::npos);
}

TEST_CASE("diff table: functions by the change of their share, largest first, matched whatever their first line") {
    Profile base = three_way(2000, 6000, 2000);
    Profile changed;
    auto thread = changed.intern_thread({1, "main"});
    FrameId main = changed.intern({"main", "w.py", 9, 8});
    changed.add(thread, std::vector<FrameId>{main, changed.intern({"a", "w.py", 4, 3})}, 8000);  // a moved down
    changed.add(thread, std::vector<FrameId>{main, changed.intern({"c", "w.py", 2, 1})}, 2000);
    std::ostringstream out;
    write_diff_table(base, changed, {}, out);
    std::string table = out.str();
    auto a = table.find("+60.00  a (w.py)");
    auto b = table.find("-60.00  b (w.py)");
    auto c = table.find("+0.00  c (w.py)");
    REQUIRE(a != std::string::npos);
    REQUIRE(b != std::string::npos);
    REQUIRE(c != std::string::npos);
    CHECK(c > a);
    CHECK(c > b);
}
