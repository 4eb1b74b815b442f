#include <doctest/doctest.h>

#include <algorithm>
#include <string>
#include <vector>

#include "commands/top_screen.hpp"

using pysample::exporters::Frame;
using namespace pysample::sampler;

namespace {

// A 30/70 program: <module> -> main -> work_30 / work_70, 100 ticks of one thread.
TopCounts split_counts() {
    TopCounts counts;
    Frame module{"<module>", "/app/split.py", 26, 1};
    Frame main_30{"main", "/app/split.py", 22, 18};
    Frame main_70{"main", "/app/split.py", 23, 18};
    Frame work_30{"work_30", "/app/split.py", 8, 6};
    Frame work_70{"work_70", "/app/split.py", 14, 12};
    for (int i = 0; i < 100; ++i) {
        counts.add_tick();
        std::vector<Frame> stack =
            i < 30 ? std::vector<Frame>{work_30, main_30, module} : std::vector<Frame>{work_70, main_70, module};
        counts.add_stack(stack);
    }
    return counts;
}

TopStatus split_status() {
    TopStatus status;
    status.pid = 4242;
    status.command_line = "python3 /app/split.py 60";
    status.python_version = "3.12.1";
    status.rate_asked = 100;
    status.elapsed_s = 2.0;
    status.running_s = 2.0;
    status.threads = 3;
    status.idle_threads = 2;
    return status;
}

std::vector<std::string> texts(const std::vector<ScreenLine>& lines) {
    std::vector<std::string> out;
    for (const auto& line : lines) out.push_back(line.text);
    return out;
}

// Function names of the table rows, in the order shown.
std::vector<std::string> row_functions(const std::vector<ScreenLine>& lines) {
    std::vector<std::string> names;
    bool in_table = false;
    for (const auto& line : lines) {
        if (line.style == LineStyle::TableHeader) {
            in_table = true;
            continue;
        }
        if (!in_table || line.style != LineStyle::Plain || line.text.empty()) continue;
        auto start = line.text.find("s  ", line.text.find("s  ") + 3) + 3;
        names.push_back(line.text.substr(start, line.text.find(' ', start) - start));
    }
    return names;
}

const TopEntry& entry_named(const TopCounts& counts, TopGrouping grouping, const std::string& function, int line = 0) {
    const auto& entries = counts.entries(grouping);
    auto it = std::find_if(entries.begin(), entries.end(), [&](const TopEntry& e) {
        return e.frame.function == function && (line == 0 || e.frame.line == line);
    });
    REQUIRE(it != entries.end());
    return *it;
}

}  // namespace

TEST_CASE("top counts own samples at the innermost frame and total samples once per stack") {
    TopCounts counts;
    Frame f1{"f", "a.py", 3, 1};
    Frame f2{"f", "a.py", 5, 1};
    Frame g{"g", "a.py", 9, 8};
    counts.add_tick();
    counts.add_stack(std::vector<Frame>{g, f2, f1});  // f recursing through two lines, g innermost
    counts.add_tick();
    counts.add_stack(std::vector<Frame>{f2, f1});
    CHECK(counts.ticks() == 2);

    const auto& f = entry_named(counts, TopGrouping::Function, "f");
    CHECK(f.own == 1);
    CHECK(f.total == 2);
    CHECK(f.frame.line == 0);
    CHECK(f.frame.first_line == 1);
    CHECK(entry_named(counts, TopGrouping::Function, "g").own == 1);
    CHECK(counts.entries(TopGrouping::Function).size() == 2);

    CHECK(counts.entries(TopGrouping::Line).size() == 3);
    CHECK(entry_named(counts, TopGrouping::Line, "f", 5).own == 1);
    CHECK(entry_named(counts, TopGrouping::Line, "f", 5).total == 2);
    CHECK(entry_named(counts, TopGrouping::Line, "f", 3).own == 0);
}

TEST_CASE("top keeps functions of one name in one file apart by their first line") {
    TopCounts counts;
    counts.add_tick();
    counts.add_stack(std::vector<Frame>{{"<lambda>", "a.py", 4, 4}});
    counts.add_tick();
    counts.add_stack(std::vector<Frame>{{"<lambda>", "a.py", 7, 7}});
    CHECK(counts.entries(TopGrouping::Function).size() == 2);
}

TEST_CASE("top windows hold the counts of the last refresh interval; reset clears everything") {
    TopCounts counts = split_counts();
    counts.close_window();
    CHECK(counts.window_ticks() == 100);
    counts.add_tick();
    counts.add_stack(std::vector<Frame>{{"work_30", "/app/split.py", 8, 6}});
    counts.close_window();
    CHECK(counts.window_ticks() == 1);
    const auto& work_30 = entry_named(counts, TopGrouping::Function, "work_30");
    CHECK(work_30.own == 31);
    CHECK(work_30.window_own == 1);
    CHECK(entry_named(counts, TopGrouping::Function, "work_70").window_own == 0);

    counts.reset();
    CHECK(counts.ticks() == 0);
    CHECK(counts.entries(TopGrouping::Function).empty());
}

TEST_CASE("top screen shows the header, the sorted table and the keys") {
    TopCounts counts = split_counts();
    TopStatus status = split_status();
    status.errors = 2;
    status.common_error = "stack changed while being read";
    TopView view;
    TopLayout layout{160, 20, 0, true};
    auto lines = render_top(counts, status, view, layout);
    auto text = texts(lines);

    REQUIRE(lines.size() == 20);
    CHECK(text[0] == "pysample top - pid 4242 - Python 3.12.1 - python3 /app/split.py 60");
    CHECK(lines[0].style == LineStyle::Heading);
    CHECK(text[1] ==
          "Samples: 100 in 2.0 s (50.0 Hz achieved, 100 Hz asked), errors: 2 (2.0%, mostly stack changed while "
          "being read)");
    CHECK(text[2] == "Threads: 3 (1 active, 2 idle)   Elapsed: 2.0 s");
    CHECK(text[3] == "Sort: %Own   %: cumulative   Rows: functions   Mode: nonblocking");
    CHECK(text[4].empty());
    CHECK(text[5] == "   %Own  %Total  OwnTime  TotalTime  Function (file:first line)");
    CHECK(lines[5].style == LineStyle::TableHeader);
    CHECK(text[5].substr(lines[5].highlight_begin, lines[5].highlight_end - lines[5].highlight_begin) == "%Own");
    CHECK(text[6] == "  70.0%   70.0%    1.40s      1.40s  work_70 (/app/split.py:12)");
    CHECK(text[7] == "  30.0%   30.0%   0.600s     0.600s  work_30 (/app/split.py:6)");
    CHECK(text[8] == "   0.0%  100.0%   0.000s      2.00s  <module> (/app/split.py:1)");
    CHECK(text[9] == "   0.0%  100.0%   0.000s      2.00s  main (/app/split.py:18)");
    CHECK(text[10].empty());
    CHECK(text[19] == "Keys: q quit, 1-4 sort, ? help");
    CHECK(lines[19].style == LineStyle::Footer);
}

TEST_CASE("top sorts by the chosen column and marks it") {
    TopCounts counts = split_counts();
    TopView view;
    TopLayout layout{160, 0, 0, false};
    CHECK(row_functions(render_top(counts, split_status(), view, layout)) ==
          std::vector<std::string>{"work_70", "work_30", "<module>", "main"});

    CHECK(apply_key('2', view) == KeyAction::Redraw);
    auto lines = render_top(counts, split_status(), view, layout);
    CHECK(row_functions(lines) == std::vector<std::string>{"<module>", "main", "work_70", "work_30"});
    CHECK(lines[3].text.starts_with("Sort: %Total"));
    CHECK(lines[5].text.substr(lines[5].highlight_begin, lines[5].highlight_end - lines[5].highlight_begin) ==
          "%Total");

    apply_key('3', view);
    lines = render_top(counts, split_status(), view, layout);
    CHECK(lines[3].text.starts_with("Sort: OwnTime"));
    CHECK(row_functions(lines).front() == "work_70");
    apply_key('4', view);
    CHECK(render_top(counts, split_status(), view, layout)[3].text.starts_with("Sort: TotalTime"));
}

TEST_CASE("top percentages over the last window can rank differently from the times") {
    TopCounts counts = split_counts();
    counts.close_window();
    for (int i = 0; i < 10; ++i) {
        counts.add_tick();
        counts.add_stack(std::vector<Frame>{{"work_30", "/app/split.py", 8, 6}});
    }
    counts.close_window();
    TopStatus status = split_status();
    status.refresh_interval_s = 1;
    TopView view;
    TopLayout layout{160, 0, 0, false};
    CHECK(apply_key('w', view) == KeyAction::Redraw);
    auto lines = render_top(counts, status, view, layout);
    CHECK(lines[3].text == "Sort: %Own   %: last 1 s   Rows: functions   Mode: nonblocking");
    CHECK(row_functions(lines).front() == "work_30");
    CHECK(lines[6].text.starts_with(" 100.0%  100.0%"));
    apply_key('3', view);
    CHECK(row_functions(render_top(counts, status, view, layout)).front() == "work_70");
}

TEST_CASE("top rows by line show each line of a function") {
    TopCounts counts = split_counts();
    TopView view;
    CHECK(apply_key('l', view) == KeyAction::Redraw);
    auto lines = render_top(counts, split_status(), view, {160, 0, 0, false});
    CHECK(lines[5].text.ends_with("Function (file:line)"));
    CHECK(lines[6].text.ends_with("work_70 (/app/split.py:14)"));
    CHECK(std::count_if(lines.begin(), lines.end(), [](const ScreenLine& l) {
              return l.text.ends_with("main (/app/split.py:22)") || l.text.ends_with("main (/app/split.py:23)");
          }) == 2);
}

TEST_CASE("top fits the terminal: rows by height, long file names shortened from the left") {
    TopCounts counts;
    counts.add_tick();
    counts.add_stack(std::vector<Frame>{{"handler", "/srv/very/long/path/to/the/application/module.py", 40, 30}});
    TopView view;
    auto lines = render_top(counts, split_status(), view, {60, 9, 0, true});
    REQUIRE(lines.size() == 9);
    for (const auto& line : lines) CHECK(display_width(line.text) <= 60);
    CHECK(lines[6].text == " 100.0%  100.0%    2.00s      2.00s  handler (...dule.py:30)");
    CHECK(lines[8].text == "Keys: q quit, 1-4 sort, ? help");

    auto small = render_top(split_counts(), split_status(), view, {160, 8, 0, true});
    CHECK(row_functions(small) == std::vector<std::string>{"work_70"});
    auto capped = render_top(split_counts(), split_status(), view, {160, 0, 2, false});
    CHECK(row_functions(capped).size() == 2);
}

TEST_CASE("top help lists the keys in the footer") {
    TopView view;
    CHECK(apply_key('?', view) == KeyAction::Redraw);
    auto lines = render_top(split_counts(), split_status(), view, {160, 30, 0, true});
    CHECK(lines[28].text.starts_with("Keys: 1 sort by %Own"));
    CHECK(lines[29].text.find("r reset counts") != std::string::npos);
    apply_key('h', view);
    CHECK(render_top(split_counts(), split_status(), view, {160, 30, 0, true}).back().text ==
          "Keys: q quit, 1-4 sort, ? help");
}

TEST_CASE("top keys") {
    TopView view;
    CHECK(apply_key('q', view) == KeyAction::Quit);
    CHECK(apply_key('\x03', view) == KeyAction::Quit);
    CHECK(apply_key('r', view) == KeyAction::Reset);
    CHECK(apply_key('t', view) == KeyAction::Redraw);
    CHECK(view.sort == TopColumn::TotalPercent);
    CHECK(apply_key('o', view) == KeyAction::Redraw);
    CHECK(view.sort == TopColumn::OwnPercent);
    CHECK(apply_key('x', view) == KeyAction::None);
}

TEST_CASE("top says why the table is empty") {
    TopCounts counts;
    TopStatus status = split_status();
    auto lines = render_top(counts, status, {}, {160, 0, 0, false});
    CHECK(lines.back().text == "  collecting samples...");
    counts.add_tick();
    lines = render_top(counts, status, {}, {160, 0, 0, false});
    CHECK(lines.back().text.find("--idle") != std::string::npos);
}

TEST_CASE("names from the target cannot send escape sequences to the terminal") {
    CHECK(terminal_text("f\x1b[2Jx") == "f\xEF\xBF\xBD[2Jx");
    CHECK(terminal_text("a\xff") == "a\xEF\xBF\xBD");
    CHECK(terminal_text("\xC2\x9B") == "\xEF\xBF\xBD");  // C1 control (CSI)
    CHECK(terminal_text("caf\xC3\xA9") == "caf\xC3\xA9");
    CHECK(display_width("caf\xC3\xA9") == 4);
    CHECK(fit_width("caf\xC3\xA9!", 4) == "caf\xC3\xA9");

    TopCounts counts;
    counts.add_tick();
    counts.add_stack(std::vector<Frame>{{"evil\x1b]0;title\x07", "/x.py", 1, 1}});
    for (const auto& line : render_top(counts, split_status(), {}, {160, 0, 0, false})) {
        CHECK(line.text.find('\x1b') == std::string::npos);
    }
}

TEST_CASE("top times drop decimals as they grow") {
    CHECK(format_seconds(0.0123) == "0.012s");
    CHECK(format_seconds(8.634) == "8.63s");
    CHECK(format_seconds(123.45) == "123.5s");
    CHECK(format_seconds(4321.6) == "4322s");
}
