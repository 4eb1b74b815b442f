#include <doctest/doctest.h>

#include "model/layout.hpp"

using pysample::sampler::find_layout;
using pysample::sampler::PythonLayout;

namespace {

// -1 (absent) or a field starting inside a structure of the given size.
bool absent_or_inside(int64_t offset, int64_t size) { return offset == -1 || (offset >= 0 && offset < size); }

struct Version {
    int major;
    int minor;
    bool operator<(const Version& o) const { return major != o.major ? major < o.major : minor < o.minor; }
    bool operator>=(const Version& o) const { return !(*this < o); }
    bool operator<=(const Version& o) const { return !(o < *this); }
};

const Version kSupported[] = {{2, 7},  {3, 6},  {3, 7},  {3, 8},  {3, 9}, {3, 10},
                              {3, 11}, {3, 12}, {3, 13}, {3, 14}, {3, 15}};

}  // namespace

TEST_CASE("layouts exist for CPython 2.7 and 3.6 to 3.15 and nothing else known") {
    for (const auto [major, minor] : kSupported) {
        CAPTURE(major);
        CAPTURE(minor);
        const auto layout = find_layout(major, minor);
        REQUIRE(layout.has_value());
        CHECK(layout->major == major);
        CHECK(layout->minor == minor);
    }
    CHECK_FALSE(find_layout(2, 6).has_value());
    CHECK_FALSE(find_layout(3, 5).has_value());
    CHECK_FALSE(find_layout(3, 0).has_value());
    CHECK_FALSE(find_layout(3, 99).has_value());
    CHECK_FALSE(find_layout(4, 0).has_value());
}

TEST_CASE("frame objects up to 3.10, interpreter frames from 3.11") {
    for (const auto [major, minor] : kSupported) {
        CAPTURE(major);
        CAPTURE(minor);
        const Version v{major, minor};
        const PythonLayout l = find_layout(major, minor).value();
        if (v <= Version{3, 10}) {
            CHECK(l.frame_size > 0);
            CHECK(l.frame_back > 0);
            CHECK(l.frame_code > 0);
            CHECK(l.frame_lasti > 0);
            CHECK(l.iframe_size == -1);
            CHECK(l.iframe_previous == -1);
            CHECK(l.iframe_code == -1);
            CHECK(l.iframe_instr == -1);
            CHECK(l.iframe_owner == -1);
            CHECK(l.owner_generator == -1);
            CHECK(l.code_qualname == -1);
            CHECK(l.code_adaptive == -1);
            CHECK(l.code_firsttraceable == -1);
        } else {
            CHECK(l.frame_size == -1);
            CHECK(l.frame_back == -1);
            CHECK(l.frame_code == -1);
            CHECK(l.frame_lasti == -1);
            CHECK(l.iframe_size > 0);
            CHECK(l.iframe_previous >= 0);
            CHECK(l.iframe_code >= 0);
            CHECK(l.iframe_instr > 0);
            CHECK(l.iframe_owner > 0);
            CHECK(l.owner_generator == 1);
            CHECK(l.code_qualname > 0);
            CHECK(l.code_adaptive > 0);
            CHECK(l.code_adaptive < l.code_size);
            CHECK(l.code_firsttraceable > 0);
        }
        CHECK((l.iframe_is_entry >= 0) == (major == 3 && minor == 11));
        if (v <= Version{3, 13}) CHECK((l.owner_cstack == 3) == (v >= Version{3, 12}));
        CHECK((l.tstate_native_thread_id > 0) == (v >= Version{3, 11}));
        CHECK((l.cframe_current_frame >= 0) == (major == 3 && (minor == 11 || minor == 12)));
        // _PyRuntime (and interpreter ids) from 3.7; before, the list starts at the static interp_head.
        CHECK((l.runtime_interpreters_head >= 0) == (v >= Version{3, 7}));
        CHECK((l.interp_id >= 0) == (v >= Version{3, 7}));
    }
}

TEST_CASE("every present offset lies inside its structure") {
    for (const auto [major, minor] : kSupported) {
        CAPTURE(major);
        CAPTURE(minor);
        const PythonLayout l = find_layout(major, minor).value();
        for (const int64_t off :
             {l.tstate_next, l.tstate_interp, l.tstate_frame, l.tstate_thread_id, l.tstate_native_thread_id}) {
            CHECK(absent_or_inside(off, l.tstate_size));
        }
        for (const int64_t off : {l.frame_back, l.frame_code, l.frame_lasti}) {
            CHECK(absent_or_inside(off, l.frame_size));
        }
        for (const int64_t off :
             {l.iframe_previous, l.iframe_code, l.iframe_instr, l.iframe_owner, l.iframe_is_entry}) {
            CHECK(absent_or_inside(off, l.iframe_size));
        }
        for (const int64_t off : {l.code_filename, l.code_name, l.code_qualname, l.code_firstlineno, l.code_linetable,
                                  l.code_firsttraceable}) {
            CHECK(absent_or_inside(off, l.code_size));
        }
        if (major == 2) {
            // Python 2 names are PyStringObjects, read through the bytes offsets.
            CHECK(l.unicode_length == -1);
            CHECK(l.unicode_state == -1);
            CHECK(l.unicode_ascii_data == -1);
            CHECK(l.unicode_compact_data == -1);
        } else {
            CHECK(l.unicode_length < l.unicode_ascii_data);
            CHECK(l.unicode_state < l.unicode_ascii_data);
            CHECK(l.unicode_ascii_data < l.unicode_compact_data);
        }
    }
}

TEST_CASE("offsets that are stable across versions on 64-bit") {
    for (const auto [major, minor] : kSupported) {
        CAPTURE(major);
        CAPTURE(minor);
        const PythonLayout l = find_layout(major, minor).value();
        // PyObject_VAR_HEAD is ob_refcnt, ob_type, ob_size.
        CHECK(l.bytes_size == 16);
        if (major == 2) {
            // PyStringObject: ob_size, long ob_shash, int ob_sstate, char ob_sval[].
            CHECK(l.bytes_data == 36);
            // PyThreadState has no prev pointer yet.
            CHECK(l.tstate_next == 0);
            CHECK(l.tstate_interp == 8);
        } else {
            CHECK(l.bytes_data == 32);
            CHECK(l.unicode_length == 16);
            CHECK(l.tstate_next == 8);
            CHECK(l.tstate_interp == 16);
        }
    }
    // PyASCIIObject lost its wstr pointer in 3.12.
    CHECK(find_layout(3, 11)->unicode_ascii_data == 48);
    CHECK(find_layout(3, 12)->unicode_ascii_data == 40);
}

TEST_CASE("known per-version offsets") {
    const PythonLayout py27 = find_layout(2, 7).value();
    CHECK(py27.tstate_frame == 16);
    CHECK(py27.interp_threads_head == 8);
    CHECK(py27.frame_lasti == 120);
    CHECK(py27.code_filename == 80);
    CHECK(py27.code_name == 88);
    CHECK(py27.code_firstlineno == 96);
    CHECK(py27.code_linetable == 104);

    const PythonLayout py36 = find_layout(3, 6).value();
    CHECK(py36.tstate_frame == 24);
    CHECK(py36.frame_lasti == 120);
    CHECK(py36.code_firstlineno == 36);
    CHECK(py36.runtime_interpreters_head == -1);

    const PythonLayout py37 = find_layout(3, 7).value();
    CHECK(py37.runtime_interpreters_head == 24);
    CHECK(py37.interp_id == 16);
    CHECK(py37.frame_lasti == 104);
    CHECK(py37.code_linetable == 112);

    const PythonLayout py38 = find_layout(3, 8).value();
    CHECK(py38.tstate_frame == 24);
    CHECK(py38.interp_threads_head == 8);

    const PythonLayout py311 = find_layout(3, 11).value();
    CHECK(py311.cframe_current_frame == 8);  // after uint8_t use_tracing
    CHECK(py311.iframe_code == 32);

    const PythonLayout py312 = find_layout(3, 12).value();
    CHECK(py312.cframe_current_frame == 0);
    CHECK(py312.iframe_code == 0);
    CHECK(py312.iframe_previous == 8);

    // Matches the interpreter's own _Py_DebugOffsets.
    const PythonLayout py313 = find_layout(3, 13).value();
    CHECK(py313.cframe_current_frame == -1);
    CHECK(py313.tstate_frame == 72);
    CHECK(py313.iframe_instr == 56);
    CHECK(py313.iframe_owner == 70);
    CHECK(py313.runtime_interpreters_head == 632);
}

TEST_CASE("frame owners that are not user code, per version") {
    // 3.12 and 3.13: C-stack shims; 3.14: shims and the interpreter's sentinel frames; 3.15: sentinels only.
    CHECK(find_layout(3, 11)->owner_cstack == -1);
    CHECK(find_layout(3, 12)->owner_cstack == 3);
    CHECK(find_layout(3, 13)->owner_interpreter == -1);
    CHECK(find_layout(3, 14)->owner_cstack == 4);
    CHECK(find_layout(3, 14)->owner_interpreter == 3);
    CHECK(find_layout(3, 15)->owner_cstack == -1);
    CHECK(find_layout(3, 15)->owner_interpreter == 3);
}

TEST_CASE("3.14 and 3.15 offsets agree with what those interpreters publish in _Py_DebugOffsets") {
    // Values read from the running interpreters' own debug offsets (Debian sid builds 3.14.10, 3.15.2).
    auto v14 = find_layout(3, 14);
    REQUIRE(v14);
    CHECK(v14->runtime_interpreters_head == 808);
    CHECK(v14->tstate_size == 832);
    CHECK(v14->tstate_thread_id == 152);
    CHECK(v14->iframe_owner == 74);
    CHECK(v14->code_adaptive == 208);
    auto v15 = find_layout(3, 15);
    REQUIRE(v15);
    CHECK(v15->runtime_interpreters_head == 936);
    CHECK(v15->tstate_size == 888);
    CHECK(v15->tstate_thread_id == 176);
    CHECK(v15->tstate_native_thread_id == 184);
    CHECK(v15->interp_threads_head == 7336);
}
