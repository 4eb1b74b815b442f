#include <doctest/doctest.h>

#include "layout.hpp"

using pysample::sampler::find_layout;
using pysample::sampler::PythonLayout;

namespace {

// -1 (absent) or a field starting inside a structure of the given size.
bool absent_or_inside(int64_t offset, int64_t size) { return offset == -1 || (offset >= 0 && offset < size); }

}  // namespace

TEST_CASE("layouts exist for CPython 3.8 to 3.13 and nothing else known") {
    for (int minor = 8; minor <= 13; ++minor) {
        CAPTURE(minor);
        const auto layout = find_layout(3, minor);
        REQUIRE(layout.has_value());
        CHECK(layout->major == 3);
        CHECK(layout->minor == minor);
    }
    CHECK_FALSE(find_layout(2, 6).has_value());
    CHECK_FALSE(find_layout(3, 99).has_value());
    CHECK_FALSE(find_layout(4, 0).has_value());
}

TEST_CASE("frame objects up to 3.10, interpreter frames from 3.11") {
    for (int minor = 8; minor <= 13; ++minor) {
        CAPTURE(minor);
        const PythonLayout l = find_layout(3, minor).value();
        if (minor <= 10) {
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
        CHECK((l.iframe_is_entry >= 0) == (minor == 11));
        CHECK((l.owner_cstack == 3) == (minor >= 12));
        CHECK((l.tstate_native_thread_id > 0) == (minor >= 11));
        CHECK((l.cframe_current_frame >= 0) == (minor == 11 || minor == 12));
    }
}

TEST_CASE("every present offset lies inside its structure") {
    for (int minor = 8; minor <= 13; ++minor) {
        CAPTURE(minor);
        const PythonLayout l = find_layout(3, minor).value();
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
        CHECK(l.unicode_length < l.unicode_ascii_data);
        CHECK(l.unicode_state < l.unicode_ascii_data);
        CHECK(l.unicode_ascii_data < l.unicode_compact_data);
    }
}

TEST_CASE("offsets that are stable across versions on 64-bit") {
    for (int minor = 8; minor <= 13; ++minor) {
        CAPTURE(minor);
        const PythonLayout l = find_layout(3, minor).value();
        // PyObject_VAR_HEAD is ob_refcnt, ob_type, ob_size.
        CHECK(l.bytes_size == 16);
        CHECK(l.bytes_data == 32);
        CHECK(l.unicode_length == 16);
        CHECK(l.tstate_next == 8);
        CHECK(l.tstate_interp == 16);
    }
    // PyASCIIObject lost its wstr pointer in 3.12.
    CHECK(find_layout(3, 11)->unicode_ascii_data == 48);
    CHECK(find_layout(3, 12)->unicode_ascii_data == 40);
}

TEST_CASE("known per-version offsets") {
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
