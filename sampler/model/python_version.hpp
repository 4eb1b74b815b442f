// CPython versions: which one a process runs, and what differs between versions beyond the
// offsets of layout.hpp's generated table, as facts the readers and the walker act on. This file
// and its .cpp are the only ones that compare version numbers with versions; everything else asks
// the facts (tests/source/version_checks.py checks it).
#pragma once

#include <cstdint>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <utility>

#include "symbolize/elf.hpp"
#include "symbolize/linetable.hpp"
#include "symbolize/pycode.hpp"

namespace pysample::sampler {

struct PythonVersion {
    int major = 0;
    int minor = 0;
    int micro = -1;      // -1 when only major.minor is known
    std::string source;  // how it was found: "Py_Version symbol", "version string", "file name", "--python-version"
    std::string to_string() const;
};

// Parses "3.11", "3.11.7", "3.12.0rc1"; nullopt otherwise.
std::optional<PythonVersion> parse_version_text(std::string_view text);
// Major/minor from a path such as /usr/lib/libpython3.9.so.1.0 or /usr/bin/python3.11.
std::optional<PythonVersion> version_from_file_name(std::string_view path);

// A free-threaded build by its ABI flag: python3.13t, libpython3.14t.so.
bool is_free_threaded_file_name(std::string_view path);

// Major/minor of the version literals ("3.11.7") in an interpreter binary's read-only data.
std::set<std::pair<int, int>> version_strings_in(const symbolize::ElfFile& elf);

// The version a PY_VERSION_HEX value (the Py_Version symbol, _Py_DebugOffsets) names; nullopt
// when it is not a Python 3 version, i.e. not such a value at all.
std::optional<PythonVersion> version_from_hex(std::uint64_t hex, std::string source);

// The versions the layout table holds, for messages: "2.7 and 3.6 to 3.15".
std::string supported_versions_text();

// How each version stores dicts, instance attributes and ints.
enum class DictFormat {
    Open27,     // 2.7: one open-addressing table of (hash, key, value)
    Compact36,  // 3.6-3.10: PyDictKeysObject with dk_size, indices, then (hash, key, value) entries
    Compact311  // 3.11+: dk_log2_size and a kind; unicode-keyed tables hold (key, value) entries
};
enum class InstanceDictFormat {
    DictOffset,       // up to 3.10: a dict pointer at tp_dictoffset
    Managed311,       // 3.11: dict pointer before the object, values pointer before that
    DictOrValues312,  // 3.12: one tagged word before the object, holding the dict or the values
    InlineValues313   // 3.13+: values after the object (tp_basicsize), dict pointer before it
};
enum class IntFormat {
    Int27,   // 2.7: PyIntObject's ob_ival; larger values are PyLongObject as below
    ObSize,  // up to 3.11: the signed digit count in ob_size
    LvTag    // 3.12+: the digit count and sign in lv_tag
};

struct VersionFacts {
    // How a code object maps instruction offsets to lines: co_lnotab up to 3.9, 3.10's
    // co_linetable, the location table from 3.11.
    symbolize::LineTableFormat line_table = symbolize::LineTableFormat::LocationTable311;
    bool signed_lnotab = true;  // co_lnotab's line deltas are signed from 3.6
    // Names and file names of code objects are str; 2.7's are byte strings.
    symbolize::StringKind code_strings = symbolize::StringKind::Unicode;
    // 2.7: a separate int type (PyInt_Type) beside long, and str is bytes.
    bool python2_objects = false;
    // The C function that evaluates a Python frame, whose calls delimit the Python frames in a
    // native stack.
    std::string_view eval_function = "_PyEval_EvalFrameDefault";
    // threading.Thread's attribute that holds its name.
    std::string_view thread_name_attribute = "_name";
    // 3.13+: _Py_DebugOffsets at the start of _PyRuntime describe the interpreter's own layout.
    bool publishes_debug_offsets = false;
    // 3.13+: every thread gets a thread state of its own, so a sub-interpreter's state names the
    // thread that runs it.
    bool thread_states_bound_to_threads = false;
    DictFormat dict_format = DictFormat::Compact311;
    InstanceDictFormat instance_format = InstanceDictFormat::InlineValues313;
    IntFormat int_format = IntFormat::LvTag;

    // asyncio: tasks are read from 3.8 (every task has a name).
    bool reads_asyncio_tasks = true;
    // How the tasks are found: the asyncio.tasks module's weak set of tasks (_all_tasks up to
    // 3.11, _scheduled_tasks and the set _eager_tasks from 3.12), or (3.14+) lists of the native
    // tasks linked from each thread state and the interpreter, whose layout the _asyncio module
    // publishes in its .AsyncioDebug section with the thread's running loop and task.
    std::string_view asyncio_task_set = "_scheduled_tasks";
    std::string_view asyncio_eager_task_set = "_eager_tasks";
    bool publishes_asyncio_debug_offsets = true;
    // Where a coroutine suspended in `await` keeps the object it awaits, counted from the top of
    // its frame's value stack: 3.15 pushes a NULL above SEND's receiver.
    int awaited_slot = 2;
};

VersionFacts version_facts(int major, int minor);

struct PythonLayout;
// What symbolize's code-object reader needs of a version: its offsets and how it encodes lines
// and names.
symbolize::CodeObjectLayout code_object_layout(const PythonLayout& layout);

}  // namespace pysample::sampler
