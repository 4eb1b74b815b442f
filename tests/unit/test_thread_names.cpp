#include <doctest/doctest.h>

#include <cstring>
#include <map>
#include <string>
#include <vector>

#include "attach/memory.hpp"
#include "fake_image.hpp"
#include "model/pydict.hpp"
#include "model/thread_names.hpp"

using namespace pysample;
using sampler::DictItem;
using sampler::ObjectReader;
using testing::FakeImage;
using testing::layout_of;
using testing::string_layout;

namespace {

constexpr std::uint64_t kInlineValuesFlag = 1u << 2;
constexpr std::uint64_t kManagedDictFlag = 1u << 4;
constexpr std::uint64_t kHeapTypeFlag = 1u << 9;

std::map<std::string, std::uint64_t> named_items(ObjectReader& reader, const std::vector<DictItem>& items) {
    std::map<std::string, std::uint64_t> out;
    for (const auto& item : items) out[reader.str_value(item.key, 64).value_or("?")] = item.value;
    return out;
}

}  // namespace

TEST_CASE("the model has what thread names are read through for every supported version") {
    for (const auto& layout : sampler::all_layouts()) {
        CAPTURE(layout.major);
        CAPTURE(layout.minor);
        CHECK(layout.interp_modules > 0);
        CHECK(layout.type_flags > 0);
        CHECK(layout.tpflags_heaptype > 0);
        CHECK((layout.dict_keys > 0) != (layout.dict_table > 0));
    }
    CHECK(layout_of(3, 12).interp_modules == 944);
    CHECK(sampler::version_facts(2, 7).dict_format == sampler::DictFormat::Open27);
    CHECK(sampler::version_facts(3, 10).dict_format == sampler::DictFormat::Compact36);
    CHECK(sampler::version_facts(3, 12).instance_format == sampler::InstanceDictFormat::DictOrValues312);
}

TEST_CASE("names from the target are made printable") {
    CHECK(sampler::printable_name("worker-alpha") == "worker-alpha");
    CHECK(sampler::printable_name("ingest pipeline \xE2\x98\x83") == "ingest pipeline \xE2\x98\x83");
    CHECK(sampler::printable_name("tab\there\nnewline") == "tab here newline");
    CHECK(sampler::printable_name("bad \xFF byte") == "bad \xEF\xBF\xBD byte");
    CHECK(sampler::printable_name("cut \xE2\x98") == "cut \xEF\xBF\xBD\xEF\xBF\xBD");
    CHECK(sampler::printable_name("overlong \xC0\xAF") == "overlong \xEF\xBF\xBD\xEF\xBF\xBD");
}

TEST_CASE("2.7 dicts: live slots of the open table, deleted ones skipped") {
    const auto& layout = layout_of(2, 7);
    FakeImage image(layout);
    ObjectReader reader(image, layout, string_layout(2), 1);
    std::uint64_t one = image.str("one");
    std::uint64_t two = image.str("two");
    std::uint64_t table = image.alloc(8 * 24);
    image.put(table + 1 * 24 + 8, one);
    image.put(table + 1 * 24 + 16, std::uint64_t{0x5000});
    image.put(table + 3 * 24 + 8, image.str("<dummy>"));  // deleted: a key without a value
    image.put(table + 6 * 24 + 8, two);
    image.put(table + 6 * 24 + 16, std::uint64_t{0x6000});
    std::uint64_t dict = image.object(image.type("dict"), 56 + 8 * 24);
    image.put(dict + 32, std::uint64_t{7});  // ma_mask
    image.put(dict + 40, table);

    std::vector<DictItem> items;
    REQUIRE(reader.dict_items(dict, items));
    CHECK(named_items(reader, items) == std::map<std::string, std::uint64_t>{{"one", 0x5000}, {"two", 0x6000}});
    CHECK(reader.dict_get(dict, "two") == std::optional<std::uint64_t>(0x6000));
    CHECK_FALSE(reader.dict_get(dict, "three"));

    image.put(dict + 32, std::uint64_t{6});  // not a power of two less one
    CHECK_FALSE(reader.dict_items(dict, items));
}

TEST_CASE("3.6-3.10 dicts: entries after indices as wide as the table needs, split values apart") {
    const auto& layout = layout_of(3, 8);
    FakeImage image(layout);
    ObjectReader reader(image, layout, string_layout(3), 1);
    std::uint64_t a = image.str("a");
    std::uint64_t b = image.str("b");
    for (auto [size, index_bytes] : {std::pair<std::uint64_t, std::size_t>{8, 1}, {256, 2}, {1 << 16, 4}}) {
        CAPTURE(size);
        std::uint64_t keys = image.keys_36({{a, 0x5000}, {0, 0}, {b, 0x6000}}, size, index_bytes);
        std::vector<DictItem> items;
        REQUIRE(reader.dict_items(image.dict_object(keys, 0), items));
        CHECK(named_items(reader, items) == std::map<std::string, std::uint64_t>{{"a", 0x5000}, {"b", 0x6000}});
    }
    std::uint64_t shared = image.keys_36({{a, 0}, {b, 0}}, 8, 1);
    std::uint64_t values = image.pointers({0, 0x7000});
    CHECK(reader.dict_get(image.dict_object(shared, values), "b") == std::optional<std::uint64_t>(0x7000));
    CHECK_FALSE(reader.dict_get(image.dict_object(shared, values), "a"));  // no value in this instance

    std::uint64_t broken = image.keys_36({{a, 1}}, 12, 1);
    std::vector<DictItem> items;
    CHECK_FALSE(reader.dict_items(image.dict_object(broken, 0), items));
}

TEST_CASE("3.11+ dicts: general and unicode entries after 1 << dk_log2_index_bytes bytes of indices") {
    for (int minor : {11, 12, 13, 14, 15}) {
        CAPTURE(minor);
        const auto& layout = layout_of(3, minor);
        FakeImage image(layout);
        ObjectReader reader(image, layout, string_layout(3), 1);
        std::uint64_t a = image.str("a");
        std::uint64_t ident = image.long_int(0x7f3a12345700ULL, minor >= 12);
        for (std::uint8_t log2_size : {std::uint8_t{3}, std::uint8_t{8}}) {
            CAPTURE(int(log2_size));
            std::vector<DictItem> items;
            REQUIRE(reader.dict_items(image.dict_object(image.keys_311({{a, 0x5000}}, log2_size, 1), 0), items));
            CHECK(named_items(reader, items) == std::map<std::string, std::uint64_t>{{"a", 0x5000}});
            REQUIRE(reader.dict_items(
                image.dict_object(image.keys_311({{ident, 0x6000}, {a, 0x5000}}, log2_size, 0), 0), items));
            REQUIRE(items.size() == 2);
            CHECK(reader.int_value(items[0].key) == std::optional<std::uint64_t>(0x7f3a12345700ULL));
            CHECK(items[0].value == 0x6000);
        }
        // A split dict's values; from 3.13 behind a 8-byte header whose capacity bounds them.
        std::uint64_t shared = image.keys_311({{a, 0}, {image.str("b"), 0}}, 3, 2);
        std::size_t header = static_cast<std::size_t>(std::max<std::int64_t>(layout.dict_values_array, 0));
        std::uint64_t values = image.pointers({0x7000, 0x8000}, header);
        if (header != 0) image.put(values, std::uint8_t{1});
        std::vector<DictItem> items;
        REQUIRE(reader.dict_items(image.dict_object(shared, values), items));
        CHECK(items.size() == (header != 0 ? 1 : 2));
        CHECK(reader.dict_get(image.dict_object(shared, values), "a") == std::optional<std::uint64_t>(0x7000));
    }
}

TEST_CASE("ints: idents of up to 64 bits; negative ones and other types are not idents") {
    const auto& py27 = layout_of(2, 7);
    FakeImage image(py27);
    ObjectReader reader(image, py27, string_layout(2), 1);
    std::uint64_t small = image.object(image.type("int"), 24);
    image.put(small + 16, std::int64_t{140234567890});
    CHECK(reader.int_value(small) == std::optional<std::uint64_t>(140234567890));
    CHECK(reader.int_value(image.long_int(0xfedcba9876543210ULL, false, "long")) ==
          std::optional<std::uint64_t>(0xfedcba9876543210ULL));
    CHECK_FALSE(reader.int_value(image.str("12")));

    const auto& py312 = layout_of(3, 12);
    FakeImage image312(py312);
    ObjectReader reader312(image312, py312, string_layout(3), 1);
    CHECK(reader312.int_value(image312.long_int(0, true)) == std::optional<std::uint64_t>(0));
    CHECK(reader312.int_value(image312.long_int(0x7f0000001234ULL, true)) ==
          std::optional<std::uint64_t>(0x7f0000001234ULL));
    std::uint64_t negative = image312.long_int(5, true);
    image312.put(negative + 16, std::uint64_t{(1 << 3) | 2});
    CHECK_FALSE(reader312.int_value(negative));
    std::uint64_t too_big = image312.long_int(1, true);
    image312.put(too_big + 16, std::uint64_t{4 << 3});
    CHECK_FALSE(reader312.int_value(too_big));

    const auto& py310 = layout_of(3, 10);
    FakeImage image310(py310);
    ObjectReader reader310(image310, py310, string_layout(3), 1);
    std::uint64_t minus = image310.long_int(5, false);
    image310.put(minus + 16, std::int64_t{-1});
    CHECK_FALSE(reader310.int_value(minus));
    CHECK(reader310.int_value(image310.long_int(0xffffffffffffffffULL, false)) ==
          std::optional<std::uint64_t>(0xffffffffffffffffULL));
}

TEST_CASE("instance attributes wherever each version keeps them") {
    SUBCASE("up to 3.10: the dict at tp_dictoffset") {
        const auto& layout = layout_of(3, 9);
        FakeImage image(layout);
        ObjectReader reader(image, layout, string_layout(3), 1);
        std::uint64_t keys = image.keys_36({{image.str("_name"), image.str("worker")}}, 8, 1);
        std::uint64_t thread = image.object(image.type("Thread", kHeapTypeFlag, 40, 16), 40);
        image.put(thread + 16, image.dict_object(keys, 0));
        auto name = reader.attribute(thread, "_name");
        REQUIRE(name);
        CHECK(reader.str_value(*name, 64) == std::optional<std::string>("worker"));
    }
    SUBCASE("3.11: values before the object when it has no dict") {
        const auto& layout = layout_of(3, 11);
        FakeImage image(layout);
        ObjectReader reader(image, layout, string_layout(3), 1);
        std::uint64_t keys = image.keys_311({{image.str("_target"), 0}, {image.str("_name"), 0}}, 3, 2);
        std::uint64_t thread =
            image.object(image.type("Thread", kHeapTypeFlag | kManagedDictFlag, 16, -1, keys), 16, 32);
        image.put(thread - 32, image.pointers({0x9000, image.str("worker")}));
        auto name = reader.attribute(thread, "_name");
        REQUIRE(name);
        CHECK(reader.str_value(*name, 64) == std::optional<std::string>("worker"));

        std::uint64_t own = image.dict_object(image.keys_311({{image.str("_name"), image.str("own dict")}}, 3, 1), 0);
        image.put(thread - 24, own);
        CHECK(reader.str_value(reader.attribute(thread, "_name").value_or(0), 64) ==
              std::optional<std::string>("own dict"));
    }
    SUBCASE("3.12: one word before the object, the values tagged by its low bit") {
        const auto& layout = layout_of(3, 12);
        FakeImage image(layout);
        ObjectReader reader(image, layout, string_layout(3), 1);
        std::uint64_t keys = image.keys_311({{image.str("_name"), 0}}, 3, 2);
        std::uint64_t thread =
            image.object(image.type("Thread", kHeapTypeFlag | kManagedDictFlag, 16, -1, keys), 16, 32);
        std::uint64_t values = image.pointers({image.str("tagged")});
        image.put(thread - 24, values - 1);
        CHECK(reader.str_value(reader.attribute(thread, "_name").value_or(0), 64) ==
              std::optional<std::string>("tagged"));
        std::uint64_t own = image.dict_object(image.keys_311({{image.str("_name"), image.str("own dict")}}, 3, 1), 0);
        image.put(thread - 24, own);
        CHECK(reader.str_value(reader.attribute(thread, "_name").value_or(0), 64) ==
              std::optional<std::string>("own dict"));
    }
    SUBCASE("3.13+: values inline after tp_basicsize while valid, else the dict before the object") {
        for (int minor : {13, 14, 15}) {
            CAPTURE(minor);
            const auto& layout = layout_of(3, minor);
            FakeImage image(layout);
            ObjectReader reader(image, layout, string_layout(3), 1);
            std::uint64_t keys = image.keys_311({{image.str("_target"), 0}, {image.str("_name"), 0}}, 3, 2);
            std::uint64_t type =
                image.type("Thread", kHeapTypeFlag | kManagedDictFlag | kInlineValuesFlag, 32, -1, keys);
            std::uint64_t thread = image.object(type, 32 + 8 + 16, 32);
            image.put(thread + 32, std::uint8_t{2});      // capacity
            image.put(thread + 32 + 3, std::uint8_t{1});  // valid
            image.put(thread + 32 + 8 + 8, image.str("inline"));
            CHECK(reader.str_value(reader.attribute(thread, "_name").value_or(0), 64) ==
                  std::optional<std::string>("inline"));
            image.put(thread + 32 + 3, std::uint8_t{0});
            CHECK_FALSE(reader.attribute(thread, "_name"));
            std::uint64_t own =
                image.dict_object(image.keys_311({{image.str("_name"), image.str("own dict")}}, 3, 1), 0);
            image.put(thread - 24, own);
            CHECK(reader.str_value(reader.attribute(thread, "_name").value_or(0), 64) ==
                  std::optional<std::string>("own dict"));
        }
    }
}

TEST_CASE("threading names: sys.modules -> threading -> _active -> each Thread's _name") {
    for (int minor : {7, 12, 13}) {
        CAPTURE(minor);
        const auto& layout = layout_of(3, minor);
        FakeImage image(layout);
        bool lv_tag = minor >= 12;
        bool managed = minor >= 11;
        auto unicode_dict = [&](std::vector<DictItem> items) {
            return managed ? image.dict_object(image.keys_311(items, 3, 1), 0)
                           : image.dict_object(image.keys_36(items, 8, 1), 0);
        };
        auto thread = [&](const std::string& name) {
            std::uint64_t keys = managed ? image.keys_311({{image.str("_name"), 0}}, 3, 2) : 0;
            std::uint64_t flags =
                kHeapTypeFlag | (managed ? kManagedDictFlag : 0) | (minor >= 13 ? kInlineValuesFlag : 0);
            std::uint64_t object = image.object(image.type("Thread", flags, 16, managed ? -1 : 16, keys), 16 + 24, 32);
            std::uint64_t dict = unicode_dict({{image.str("_name"), image.str(name)}});
            if (managed) {
                image.put(object - 24, dict);
            } else {
                image.put(object + 16, dict);
            }
            return object;
        };
        std::uint64_t first = 0x7f0011112222ULL;
        std::uint64_t second = 0x7f0033334444ULL;
        std::vector<DictItem> threads = {{image.long_int(first, lv_tag), thread("worker-alpha")},
                                         {image.long_int(second, lv_tag), thread("tab\tname")}};
        std::uint64_t active = managed ? image.dict_object(image.keys_311(threads, 3, 0), 0)
                                       : image.dict_object(image.keys_36(threads, 8, 1), 0);
        std::uint64_t globals =
            unicode_dict({{image.str("__name__"), image.str("threading")}, {image.str("_active"), active}});
        std::uint64_t module = image.object(image.type("module"), 24);
        image.put(module + 16, globals);
        std::uint64_t modules = unicode_dict({{image.str("sys"), 0x9000}, {image.str("threading"), module}});
        std::uint64_t interp = image.alloc(static_cast<std::size_t>(layout.interp_modules) + 8);
        image.put(interp + static_cast<std::uint64_t>(layout.interp_modules), modules);

        sampler::ThreadingNamesReader reader(image, layout, string_layout(3), 1);
        auto names = reader.read(interp);
        REQUIRE(names);
        CHECK(*names == std::unordered_map<std::uint64_t, std::string>{{first, "worker-alpha"}, {second, "tab name"}});

        // Without threading imported there are no names, and that is no failure.
        std::uint64_t bare = image.alloc(static_cast<std::size_t>(layout.interp_modules) + 8);
        image.put(bare + static_cast<std::uint64_t>(layout.interp_modules), unicode_dict({{image.str("sys"), 0x9000}}));
        auto none = reader.read(bare);
        REQUIRE(none);
        CHECK(none->empty());
        // sys.modules that is not a dict is.
        std::uint64_t broken = image.alloc(static_cast<std::size_t>(layout.interp_modules) + 8);
        image.put(broken + static_cast<std::uint64_t>(layout.interp_modules), image.str("not a dict"));
        CHECK_FALSE(reader.read(broken));
    }
}

TEST_CASE("2.7 threading names: the mangled _Thread__name, a byte string") {
    const auto& layout = layout_of(2, 7);
    FakeImage image(layout);
    auto dict = [&](std::vector<DictItem> items) {
        std::uint64_t table = image.alloc(8 * 24);
        for (std::size_t i = 0; i < items.size(); ++i) {
            image.put(table + 24 * (2 * i) + 8, items[i].key);
            image.put(table + 24 * (2 * i) + 16, items[i].value);
        }
        std::uint64_t object = image.object(image.type("dict"), 56);
        image.put(object + 32, std::uint64_t{7});
        image.put(object + 40, table);
        return object;
    };
    std::uint64_t thread = image.object(image.type("Thread", kHeapTypeFlag, 32, 16), 32);
    image.put(thread + 16, dict({{image.str("_Thread__name"), image.str("ingest pipeline \xE2\x98\x83")}}));
    std::uint64_t ident = image.object(image.type("int"), 24);
    image.put(ident + 16, std::int64_t{0x7f0055556666});
    std::uint64_t module = image.object(image.type("module"), 24);
    image.put(module + 16, dict({{image.str("_active"), dict({{ident, thread}})}}));
    std::uint64_t interp = image.alloc(64);
    image.put(interp + 16, dict({{image.str("threading"), module}}));

    sampler::ThreadingNamesReader reader(image, layout, string_layout(2), 1);
    auto names = reader.read(interp);
    REQUIRE(names);
    CHECK(*names == std::unordered_map<std::uint64_t, std::string>{{0x7f0055556666, "ingest pipeline \xE2\x98\x83"}});
}

TEST_CASE("names are read again for new threads, for unnamed new threads a while, and once a period") {
    using Schedule = sampler::NameRefreshSchedule;
    using std::chrono::milliseconds;
    Schedule schedule;
    Schedule::Clock::time_point start{};
    std::vector<std::uint64_t> idents = {1, 2};
    CHECK(schedule.due(start, idents));
    schedule.refreshed(start, idents, {1, 2});
    CHECK_FALSE(schedule.due(start + milliseconds(500), idents));
    CHECK(schedule.due(start + Schedule::kPeriod, idents));

    // A new thread: read at once, but not more often than the minimum gap.
    std::vector<std::uint64_t> more = {1, 2, 3};
    CHECK_FALSE(schedule.due(start + milliseconds(50), more));
    CHECK(schedule.due(start + Schedule::kMinimumGap, more));
    auto second = start + Schedule::kMinimumGap;
    schedule.refreshed(second, more, {1, 2});  // 3 not registered in threading yet

    // Retried while recent, every so often, then only with the period.
    CHECK_FALSE(schedule.due(second + Schedule::kMinimumGap, more));
    CHECK(schedule.due(second + Schedule::kRetryUnnamedEvery, more));
    auto late = second + Schedule::kRetryUnnamedFor;
    schedule.refreshed(late - milliseconds(100), more, {1, 2});
    CHECK_FALSE(schedule.due(late + milliseconds(10), more));
    CHECK(schedule.due(late - milliseconds(100) + Schedule::kPeriod, more));

    // Ident 0 (a thread state not bound to a thread yet) never asks for a read.
    schedule.refreshed(late, more, {1, 2, 3});
    std::vector<std::uint64_t> with_zero = {0, 1, 2, 3};
    CHECK_FALSE(schedule.due(late + Schedule::kMinimumGap, with_zero));
}
