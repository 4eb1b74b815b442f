#include <doctest/doctest.h>

#include <cstring>
#include <sstream>
#include <string>
#include <vector>

#include "commands/async_tree.hpp"
#include "fake_image.hpp"
#include "model/asyncio_tasks.hpp"
#include "model/pydict.hpp"

using namespace pysample;
using sampler::AsyncioState;
using sampler::AsyncTask;
using sampler::AwaitKind;
using sampler::ObjectReader;
using sampler::TaskState;
using testing::FakeImage;
using testing::layout_of;
using testing::string_layout;

namespace {

std::vector<std::uint8_t> section_of(const std::vector<std::uint64_t>& words) {
    std::vector<std::uint8_t> bytes(words.size() * sizeof(std::uint64_t));
    std::memcpy(bytes.data(), words.data(), bytes.size());
    return bytes;
}

// The words of 3.14's release build: task (size, name, awaited_by, is_task, awaited_by_is_set,
// coro, node), interpreter (size, tasks_head), thread (size, running_loop, running_task, tasks_head).
const std::vector<std::uint64_t> kSection314 = {168, 136, 96, 108, 109, 128, 152, 225864, 10880, 936, 864, 872, 880};

}  // namespace

TEST_CASE("the .AsyncioDebug section of 3.14+ is parsed, and refused when it has not its shape") {
    auto bytes = section_of(kSection314);
    auto offsets = sampler::parse_asyncio_debug_offsets(bytes);
    REQUIRE(offsets.has_value());
    CHECK(offsets->task_name == 136);
    CHECK(offsets->task_awaited_by == 96);
    CHECK(offsets->task_coro == 128);
    CHECK(offsets->task_node == 152);
    CHECK(offsets->interp_tasks_head == 10880);
    CHECK(offsets->thread_running_loop == 864);
    CHECK(offsets->thread_running_task == 872);
    CHECK(offsets->thread_tasks_head == 880);

    CHECK_FALSE(sampler::parse_asyncio_debug_offsets(std::span(bytes).first(12 * 8)).has_value());
    auto words = kSection314;
    words[5] = 0;  // no task_coro
    CHECK_FALSE(sampler::parse_asyncio_debug_offsets(section_of(words)).has_value());
    words = kSection314;
    words[12] = 4096;  // the thread's list head past its struct
    CHECK_FALSE(sampler::parse_asyncio_debug_offsets(section_of(words)).has_value());
    words = kSection314;
    words[2] = 500;  // an optional field out of range is left out, the rest kept
    auto partial = sampler::parse_asyncio_debug_offsets(section_of(words));
    REQUIRE(partial.has_value());
    CHECK(partial->task_awaited_by == -1);
    CHECK(partial->task_coro == 128);
}

TEST_CASE("sets, lists, tuples and subclasses are read as the task reader needs them") {
    const auto& layout = layout_of(3, 12);
    FakeImage image(layout);
    ObjectReader reader(image, layout, string_layout(3), 1);
    auto at = [](std::uint64_t base, std::int64_t offset) { return base + static_cast<std::uint64_t>(offset); };

    std::uint64_t a = image.str("a"), b = image.str("b"), c = image.str("c");
    SUBCASE("a set skips empty and removed slots") {
        std::uint64_t set = image.object(image.type("set"), 200);
        // Eight slots {key, hash}: a removed slot has a dummy key and hash -1.
        std::uint64_t dummy = image.str("<dummy>");
        std::vector<std::uint64_t> table = {
            a, 11, 0, 0, dummy, static_cast<std::uint64_t>(-1), b, 12, 0, 0, 0, 0, c, 13, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0};
        image.put(at(set, layout.set_mask), std::int64_t{7});
        image.put(at(set, layout.set_table), image.pointers(table));
        std::vector<std::uint64_t> members;
        REQUIRE(reader.set_items(set, members, 10));
        CHECK(members == std::vector<std::uint64_t>{a, b, c});
        CHECK_FALSE(reader.set_items(set, members, 2));  // more than asked for
        image.put(at(set, layout.set_mask), std::int64_t{1} << 40);
        CHECK_FALSE(reader.set_items(set, members, 10));  // a mask no set of that size has
    }
    SUBCASE("lists point to their items, tuples hold them") {
        std::uint64_t list = image.object(image.type("list"), 40);
        image.put(at(list, layout.var_size), std::int64_t{2});
        image.put(at(list, layout.list_items), image.pointers({a, b}));
        std::vector<std::uint64_t> items;
        REQUIRE(reader.sequence_items(list, items, 10));
        CHECK(items == std::vector<std::uint64_t>{a, b});
        std::uint64_t tuple = image.object(image.type("tuple"), 48);
        image.put(at(tuple, layout.var_size), std::int64_t{3});
        for (std::uint64_t i = 0; i < 3; ++i) image.put(at(tuple, layout.tuple_items) + 8 * i, std::vector{a, b, c}[i]);
        REQUIRE(reader.sequence_items(tuple, items, 10));
        CHECK(items == std::vector<std::uint64_t>{a, b, c});
        CHECK_FALSE(reader.sequence_items(tuple, items, 2));
        CHECK_FALSE(reader.sequence_items(a, items, 10));  // a str is neither
    }
    SUBCASE("an instance of a subclass is an instance of its base") {
        std::uint64_t task_type = image.type("_asyncio.Task");
        std::uint64_t subclass = image.type("MyTask", 1u << 9);
        image.put(at(subclass, layout.type_base), task_type);
        std::uint64_t task = image.object(subclass, 64);
        CHECK(reader.is_instance(task, task_type));
        CHECK(reader.is_instance(task, subclass));
        CHECK_FALSE(reader.is_instance(a, task_type));
    }
}

namespace {

AsyncTask task(std::uint64_t address, const std::string& name, TaskState state) {
    AsyncTask out;
    out.address = address;
    out.name = name;
    out.state = state;
    out.loop = 0x100;
    return out;
}

AsyncioState sample_state(const symbolize::CodeInfo& main_code, const symbolize::CodeInfo& sleep_code) {
    AsyncioState state;
    state.available = state.imported = true;
    auto main = task(0x1000, "main", TaskState::Waiting);
    main.frames.push_back({&main_code, 26});
    main.awaits = AwaitKind::Gather;
    main.awaits_type = "_GatheringFuture";
    main.awaits_tasks = {0x2000, 0x3000};
    auto first = task(0x2000, "fetcher-1", TaskState::Running);
    first.awaited_by = {0x1000};
    auto second = task(0x3000, "fetcher-2\x1b[31m", TaskState::Waiting);
    second.frames.push_back({&sleep_code, 665});
    second.awaits = AwaitKind::Future;
    second.awaits_type = "_asyncio.Future";
    second.awaited_by = {0x1000, 0x4000};
    auto other = task(0x4000, "other", TaskState::Waiting);
    other.awaits = AwaitKind::Task;
    other.awaits_tasks = {0x3000};
    for (auto* each : {&main, &first, &second, &other}) {
        state.index[each->address] = state.tasks.size();
        state.tasks.push_back(*each);
    }
    sampler::EventLoop loop;
    loop.address = 0x100;
    loop.type = "_UnixSelectorEventLoop";
    loop.thread_state = 0x9000;
    loop.running_task = 0x2000;
    loop.tasks = {0, 1, 2, 3};
    state.loops.push_back(loop);
    return state;
}

}  // namespace

TEST_CASE("dump --async prints each loop's tasks as a tree of who awaits whom, names escaped") {
    symbolize::CodeInfo main_code;
    main_code.function = "main";
    main_code.filename = "/srv/app.py";
    symbolize::CodeInfo sleep_code;
    sleep_code.function = "sleep";
    sleep_code.filename = "/usr/lib/python3.12/asyncio/tasks.py";
    auto state = sample_state(main_code, sleep_code);
    sampler::LoopThreads threads{{0x9000, {4321, "MainThread"}}};

    std::ostringstream text;
    sampler::print_asyncio_text(state, threads, text);
    CHECK(text.str() ==
          "\n"
          "Event loop in thread 4321 \"MainThread\" (_UnixSelectorEventLoop): 4 tasks\n"
          "├── (T) main [waiting] awaits gather(fetcher-1, fetcher-2\\x1b[31m)\n"
          "│   │ main (/srv/app.py:26)\n"
          "│   ├── (T) fetcher-1 [running]\n"
          "│   └── (T) fetcher-2\\x1b[31m [waiting] awaits _asyncio.Future (awaited by 2 tasks)\n"
          "│         sleep (/usr/lib/python3.12/asyncio/tasks.py:665)\n"
          "└── (T) other [waiting] awaits task fetcher-2\\x1b[31m\n");

    auto json = sampler::asyncio_json(state, threads);
    CHECK(json["available"] == true);
    REQUIRE(json["loops"].size() == 1);
    const auto& loop = json["loops"][0];
    CHECK(loop["thread_id"] == 4321);
    CHECK(loop["running_task"] == 0x2000);
    REQUIRE(loop["tasks"].size() == 4);
    CHECK(loop["tasks"][0]["awaits"]["kind"] == "gather");
    CHECK(loop["tasks"][0]["awaits"]["tasks"] == nlohmann::json::array({0x2000, 0x3000}));
    CHECK(loop["tasks"][2]["name"] == "fetcher-2\x1b[31m");  // JSON escapes it itself
    CHECK(loop["tasks"][2]["awaited_by"].size() == 2);
    CHECK(loop["tasks"][2]["frames"][0]["line"] == 665);
}

TEST_CASE("dump --async says why no task is shown") {
    AsyncioState state;
    state.reason = "asyncio is not imported";
    std::ostringstream text;
    sampler::print_asyncio_text(state, {}, text);
    CHECK(text.str() == "\nThere is no asyncio event loop in this process: asyncio is not imported.\n");

    state.imported = true;
    state.reason = "asyncio tasks are read for Python 3.8 and later; this process runs Python 3.7.16";
    text.str("");
    sampler::print_asyncio_text(state, {}, text);
    CHECK(text.str() == "\nNo asyncio tasks read: " + state.reason + ".\n");
    CHECK(sampler::asyncio_json(state, {})["reason"] == state.reason);

    state = AsyncioState{};
    state.available = state.imported = true;
    text.str("");
    sampler::print_asyncio_text(state, {}, text);
    CHECK(text.str() == "\nThere is no asyncio event loop running in this process.\n");

    // A task of a loop that no thread runs: still one line, which counts it.
    state.tasks.push_back(task(0x10, "orphan", TaskState::Scheduled));
    state.index[0x10] = 0;
    sampler::EventLoop idle_loop;
    idle_loop.tasks = {0};
    state.loops.push_back(idle_loop);
    text.str("");
    sampler::print_asyncio_text(state, {}, text);
    CHECK(text.str() ==
          "\nThere is no asyncio event loop running in this process (1 task belongs to loops that no thread runs: "
          "--json lists them).\n");
    CHECK(sampler::asyncio_json(state, {})["loops"][0]["thread_id"].is_null());
}

TEST_CASE("tasks awaiting each other in a cycle are still shown, once each") {
    symbolize::CodeInfo code;
    code.function = "f";
    code.filename = "a.py";
    AsyncioState state;
    state.available = state.imported = true;
    auto a = task(0x10, "a", TaskState::Waiting);
    auto b = task(0x20, "b", TaskState::Waiting);
    a.awaits = b.awaits = AwaitKind::Task;
    a.awaits_tasks = {0x20};
    b.awaits_tasks = {0x10};
    a.awaited_by = {0x20};
    b.awaited_by = {0x10};
    state.tasks = {a, b};
    state.index = {{0x10, 0}, {0x20, 1}};
    sampler::EventLoop loop;
    loop.type = "L";
    loop.tasks = {0, 1};
    loop.thread_state = 0x9000;
    state.loops.push_back(loop);
    std::ostringstream text;
    sampler::print_asyncio_text(state, {{0x9000, {7, ""}}}, text);
    auto out = text.str();
    CHECK(out.find("Event loop in thread 7 (L): 2 tasks") != std::string::npos);
    CHECK(out.find("(T) a [waiting]") != std::string::npos);
    CHECK(out.find("(T) b [waiting]") != std::string::npos);
    CHECK(out.find("(T) a [waiting]") == out.rfind("(T) a [waiting]"));
}
