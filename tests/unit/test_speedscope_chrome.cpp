#include <doctest/doctest.h>

#include <nlohmann/json.hpp>
#include <sstream>
#include <vector>

#include "exporters/exporters.hpp"

using namespace pysample::exporters;
using nlohmann::json;

namespace {

constexpr std::uint64_t kInterval = 250'000;  // microseconds at 4 Hz, exact in binary

struct TwoThreads {
    Profile profile;
    FrameId main10, work, helper, main11;
};

// The main thread runs main > work, then main alone (at another line of main), then main > work
// again, sleeps for a while and comes back in main > helper; a worker runs helper twice.
TwoThreads two_threads() {
    TwoThreads t;
    Profile& p = t.profile;
    p.info.pid = 42;
    p.info.command_line = "python app.py";
    p.info.python_version = "3.12.1";
    p.info.rate_hz = 4;
    p.info.duration_s = 2.25;
    p.info.samples = 9;
    p.info.start_time = "2024-01-02T03:04:05+0000";
    auto main_thread = p.intern_thread({100, "MainThread"});
    auto worker = p.intern_thread({101, ""});
    t.main10 = p.intern({"main", "/app/app.py", 10, 1});
    t.work = p.intern({"work", "/app/app.py", 20, 18});
    t.helper = p.intern({"helper", "/app/lib.py", 5, 0});
    t.main11 = p.intern({"main", "/app/app.py", 11, 1});
    std::vector<FrameId> main_work{t.main10, t.work};
    std::vector<FrameId> helper_only{t.helper};
    std::vector<FrameId> main_only{t.main11};
    std::vector<FrameId> main_helper{t.main10, t.helper};
    p.add_at(0, main_thread, main_work);
    p.add_at(0, worker, helper_only);
    p.add_at(kInterval, main_thread, main_work);
    p.add_at(kInterval, worker, helper_only);
    p.add_at(2 * kInterval, main_thread, main_only);
    p.add_at(3 * kInterval, main_thread, main_work);
    p.add_at(8 * kInterval, main_thread, main_helper);
    return t;
}

WriteOptions with_version() {
    WriteOptions options;
    options.version = "1.2.3";
    return options;
}

json speedscope_of(const Profile& profile, const WriteOptions& options = with_version()) {
    std::ostringstream out;
    write_speedscope(profile, options, out);
    return json::parse(out.str());
}

json chrome_of(const Profile& profile, const WriteOptions& options = with_version()) {
    std::ostringstream out;
    write_chrome(profile, options, out);
    return json::parse(out.str());
}

json slice(const char* name, std::uint64_t ts, std::uint64_t dur, std::uint64_t tid, json args) {
    return {{"ph", "X"},  {"name", name}, {"cat", "python"}, {"ts", ts},
            {"dur", dur}, {"pid", 42},    {"tid", tid},      {"args", args}};
}

json thread_name(std::uint64_t tid, const char* name) {
    return {{"ph", "M"}, {"name", "thread_name"}, {"pid", 42}, {"tid", tid}, {"args", {{"name", name}}}};
}

json process_name(const char* name) {
    return {{"ph", "M"}, {"name", "process_name"}, {"pid", 42}, {"args", {{"name", name}}}};
}

}  // namespace

TEST_CASE("speedscope: one time-ordered profile per thread, consecutive identical samples merged") {
    json expected = {{"$schema", "https://www.speedscope.app/file-format-schema.json"},
                     {"name", "python app.py"},
                     {"exporter", "pysample 1.2.3"},
                     {"activeProfileIndex", 0},
                     {"shared",
                      {{"frames",
                        {{{"name", "main"}, {"file", "/app/app.py"}, {"line", 10}},
                         {{"name", "work"}, {"file", "/app/app.py"}, {"line", 20}},
                         {{"name", "helper"}, {"file", "/app/lib.py"}, {"line", 5}},
                         {{"name", "main"}, {"file", "/app/app.py"}, {"line", 11}}}}}},
                     {"profiles",
                      {{{"type", "sampled"},
                        {"name", "MainThread (tid 100)"},
                        {"unit", "seconds"},
                        {"startValue", 0},
                        {"endValue", 1.25},
                        {"samples", {{0, 1}, {3}, {0, 1}, {0, 2}}},
                        {"weights", {0.5, 0.25, 0.25, 0.25}}},
                       {{"type", "sampled"},
                        {"name", "thread 101"},
                        {"unit", "seconds"},
                        {"startValue", 0},
                        {"endValue", 0.5},
                        {"samples", {{2}}},
                        {"weights", {0.5}}}}}};
    CHECK(speedscope_of(two_threads().profile) == expected);
}

TEST_CASE("speedscope: without line numbers frames differing only by line become one entry") {
    WriteOptions options = with_version();
    options.line_numbers = false;
    json result = speedscope_of(two_threads().profile, options);
    json frames = {{{"name", "main"}, {"file", "/app/app.py"}},
                   {{"name", "work"}, {"file", "/app/app.py"}},
                   {{"name", "helper"}, {"file", "/app/lib.py"}}};
    CHECK(result["shared"]["frames"] == frames);
    // The stack change from main:10 to main:11 is still a change of stack, so not merged.
    CHECK(result["profiles"][0]["samples"] == json{{0, 1}, {0}, {0, 1}, {0, 2}});
}

TEST_CASE("speedscope: consecutive stacks that differ only in lines not shown merge into one sample") {
    Profile profile;
    profile.info.rate_hz = 4;
    auto t = profile.intern_thread({1, ""});
    std::vector<FrameId> line1{profile.intern({"f", "a.py", 1, 1})};
    std::vector<FrameId> line2{profile.intern({"f", "a.py", 2, 1})};
    profile.add_at(0, t, line1);
    profile.add_at(kInterval, t, line2);
    profile.add_at(2 * kInterval, t, line1);
    json with_lines = speedscope_of(profile)["profiles"][0];
    CHECK(with_lines["samples"] == json{{0}, {1}, {0}});
    CHECK(with_lines["weights"] == json{0.25, 0.25, 0.25});
    WriteOptions options;
    options.line_numbers = false;
    json without_lines = speedscope_of(profile, options)["profiles"][0];
    CHECK(without_lines["samples"] == json{{0}});
    CHECK(without_lines["weights"] == json{0.75});
}

TEST_CASE("speedscope: a profile without a complete timeline lists each unique stack once, weighted") {
    Profile profile(1'000'000, 2);
    profile.info.rate_hz = 100;
    profile.info.pid = 7;
    auto t = profile.intern_thread({5, "w"});
    auto f = profile.intern({"f", "a.py", 1, 1});
    auto g = profile.intern({"g", "a.py", 4, 3});
    std::vector<FrameId> fg{f, g};
    std::vector<FrameId> only_f{f};
    profile.add_at(0, t, fg);
    profile.add_at(10'000, t, only_f);
    profile.add_at(20'000, t, fg);  // past the timeline's bound
    profile.add(t, only_f, 2);
    REQUIRE_FALSE(profile.timeline_complete());
    json result = speedscope_of(profile, {});
    CHECK(result["name"] == "pid 7");
    CHECK(result["exporter"] == "pysample");
    json expected_profile = {{"type", "sampled"},      {"name", "w (tid 5)"}, {"unit", "seconds"},
                             {"startValue", 0},        {"endValue", 0.05},    {"samples", {{0, 1}, {0}}},
                             {"weights", {0.02, 0.03}}};
    CHECK(result["profiles"] == json::array({expected_profile}));
}

TEST_CASE("speedscope: without a sampling rate the weights are sample counts") {
    Profile profile;
    auto f = profile.intern({"f", "", 0, 0});
    std::vector<FrameId> stack{f};
    profile.add(profile.intern_thread({1, ""}), stack, 3);
    json result = speedscope_of(profile);
    CHECK(result["shared"]["frames"] == json{{{"name", "f"}}});
    CHECK(result["profiles"][0]["unit"] == "none");
    CHECK(result["profiles"][0]["weights"] == json{3.0});
    CHECK(result["profiles"][0]["endValue"] == 3.0);
}

TEST_CASE("chrome: one slice per contiguous run of a function, closed early across an idle gap") {
    json expected = {{"traceEvents",
                      {process_name("python app.py"), thread_name(100, "MainThread"), thread_name(101, "thread 101"),
                       // main keeps running when only its current line changes (10 -> 11); the 1.25 s without
                       // samples ends every open slice one interval after the last sample.
                       slice("main", 0, 4 * kInterval, 100, {{"file", "/app/app.py"}, {"line", 1}}),
                       slice("work", 0, 2 * kInterval, 100, {{"file", "/app/app.py"}, {"line", 18}}),
                       slice("work", 3 * kInterval, kInterval, 100, {{"file", "/app/app.py"}, {"line", 18}}),
                       slice("main", 8 * kInterval, kInterval, 100, {{"file", "/app/app.py"}, {"line", 1}}),
                       // helper's first line is unknown: the line seen when the slice began stands in.
                       slice("helper", 8 * kInterval, kInterval, 100, {{"file", "/app/lib.py"}, {"line", 5}}),
                       slice("helper", 0, 2 * kInterval, 101, {{"file", "/app/lib.py"}, {"line", 5}})}},
                     {"displayTimeUnit", "ms"},
                     {"otherData",
                      {{"exporter", "pysample 1.2.3"},
                       {"pid", 42},
                       {"command_line", "python app.py"},
                       {"python_version", "3.12.1"},
                       {"rate_hz", 4.0},
                       {"duration_s", 2.25},
                       {"samples", 9},
                       {"errors", 0},
                       {"start_time", "2024-01-02T03:04:05+0000"},
                       {"timeline_samples", 7},
                       {"profile_samples", 7},
                       {"timeline_complete", true}}}};
    CHECK(chrome_of(two_threads().profile) == expected);
}

TEST_CASE("chrome: a gap of up to two intervals does not end a slice") {
    Profile profile;
    profile.info.pid = 42;
    profile.info.rate_hz = 4;
    auto t = profile.intern_thread({9, "T"});
    auto f = profile.intern({"f", "a.py", 2, 1});
    std::vector<FrameId> stack{f};
    profile.add_at(0, t, stack);
    profile.add_at(2 * kInterval, t, stack);      // exactly two intervals later: still running
    profile.add_at(4 * kInterval + 1, t, stack);  // just over two intervals: idle in between
    json events = chrome_of(profile)["traceEvents"];
    REQUIRE(events.size() == 4);
    CHECK(events[2] == slice("f", 0, 3 * kInterval, 9, {{"file", "a.py"}, {"line", 1}}));
    CHECK(events[3] == slice("f", 4 * kInterval + 1, kInterval, 9, {{"file", "a.py"}, {"line", 1}}));
}

TEST_CASE("chrome: without line numbers the slices carry only the file") {
    WriteOptions options = with_version();
    options.line_numbers = false;
    json events = chrome_of(two_threads().profile, options)["traceEvents"];
    REQUIRE(events.size() == 9);
    CHECK(events[3] == slice("main", 0, 4 * kInterval, 100, {{"file", "/app/app.py"}}));
}

TEST_CASE("chrome: a capped timeline says so and shows the samples it kept") {
    Profile profile(1'000'000, 2);
    profile.info.pid = 42;
    profile.info.rate_hz = 4;
    auto t = profile.intern_thread({9, "T"});
    auto f = profile.intern({"f", "a.py", 2, 1});
    std::vector<FrameId> stack{f};
    for (std::uint64_t i = 0; i < 3; ++i) profile.add_at(i * kInterval, t, stack);
    json result = chrome_of(profile);
    CHECK(result["otherData"]["timeline_complete"] == false);
    CHECK(result["otherData"]["timeline_samples"] == 2);
    CHECK(result["otherData"]["profile_samples"] == 3);
    CHECK(result["otherData"]["note"] ==
          "the timeline reached its size limit: only the first 2 of 3 samples are shown as events");
    CHECK(result["traceEvents"].back() == slice("f", 0, 2 * kInterval, 9, {{"file", "a.py"}, {"line", 1}}));
}

TEST_CASE("both formats write hostile names as valid, escaped JSON") {
    const std::string hostile = "q\"b\\s\x01\n</script>caf\xC3\xA9\xFF";
    const std::string replaced = "q\"b\\s\x01\n</script>caf\xC3\xA9\xEF\xBF\xBD";  // U+FFFD for 0xFF
    Profile profile;
    profile.info.pid = 42;
    profile.info.rate_hz = 4;
    profile.info.command_line = hostile;
    auto t = profile.intern_thread({3, hostile});
    auto f = profile.intern({hostile, hostile, 1, 1});
    std::vector<FrameId> stack{f};
    profile.add_at(0, t, stack);

    std::ostringstream speedscope_out;
    REQUIRE_NOTHROW(write_speedscope(profile, {}, speedscope_out));
    std::ostringstream chrome_out;
    REQUIRE_NOTHROW(write_chrome(profile, {}, chrome_out));
    for (const std::string& text : {speedscope_out.str(), chrome_out.str()}) {
        CHECK(text.find('\x01') == std::string::npos);
        CHECK(text.find("\\u0001") != std::string::npos);
        CHECK(text.find("q\\\"b\\\\s") != std::string::npos);
        CHECK(text.find("caf\xC3\xA9") != std::string::npos);  // non-ASCII kept as UTF-8
    }

    json speedscope = json::parse(speedscope_out.str());
    CHECK(speedscope["name"] == replaced);
    CHECK(speedscope["shared"]["frames"][0] == json{{"name", replaced}, {"file", replaced}, {"line", 1}});
    CHECK(speedscope["profiles"][0]["name"] == replaced + " (tid 3)");

    json chrome = json::parse(chrome_out.str());
    CHECK(chrome["traceEvents"][0]["args"]["name"] == replaced);
    CHECK(chrome["traceEvents"][1]["args"]["name"] == replaced);
    CHECK(chrome["traceEvents"][2]["name"] == replaced);
    CHECK(chrome["traceEvents"][2]["args"]["file"] == replaced);
    CHECK(chrome["otherData"]["command_line"] == replaced);
}

TEST_CASE("an empty profile still makes valid files") {
    Profile profile;
    profile.info.pid = 42;
    json speedscope = speedscope_of(profile);
    CHECK(speedscope["profiles"] == json::array());
    CHECK(speedscope["shared"]["frames"] == json::array());
    json chrome = chrome_of(profile);
    CHECK(chrome["traceEvents"] == json::array({process_name("pid 42")}));
}
