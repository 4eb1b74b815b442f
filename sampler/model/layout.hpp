// Per-version offsets of the CPython structures the sampler reads.
#pragma once

#include <cstdint>
#include <optional>
#include <span>

namespace pysample::sampler {

// An offset of -1 means the field does not exist in that version.
struct PythonLayout {
    int major;
    int minor;

    // _PyRuntimeState
    int64_t runtime_interpreters_head;
    int64_t runtime_tstate_current;  // gilstate.tstate_current, 3.7 to 3.11
    int64_t runtime_gil;             // ceval.gil, the GIL itself, 3.7 to 3.11

    // PyInterpreterState
    int64_t interp_next;
    int64_t interp_threads_head;  // tstate_head up to 3.10, threads.head from 3.11
    int64_t interp_id;
    int64_t interp_gil;  // ceval.gil, a pointer to the interpreter's GIL, 3.12+

    // struct _gil_runtime_state (3.7+)
    int64_t gil_locked;
    int64_t gil_last_holder;

    // PyThreadState
    int64_t tstate_size;
    int64_t tstate_next;
    int64_t tstate_interp;
    int64_t tstate_frame;  // frame up to 3.10, cframe in 3.11/3.12, current_frame from 3.13
    int64_t tstate_thread_id;
    int64_t tstate_native_thread_id;
    int64_t tstate_cframe;      // cframe (3.10 to 3.12): a _PyCFrame on the C stack of the thread running the state
    int64_t tstate_base_frame;  // base_frame (3.15+): the frame every chain of the thread's frames ends in

    // _PyCFrame (3.11, 3.12)
    int64_t cframe_current_frame;

    // PyFrameObject (up to 3.10)
    int64_t frame_size;
    int64_t frame_back;
    int64_t frame_code;
    int64_t frame_lasti;
    int64_t frame_localsplus;
    int64_t frame_executing;        // f_executing (3.6 to 3.9), f_state (3.10): whether the frame is on a stack
    int64_t frame_state_executing;  // f_state's FRAME_EXECUTING and FRAME_UNWINDING (3.10); -1 where
    int64_t frame_state_unwinding;  // frame_executing is a flag
    int64_t frame_lasti_unit;       // bytes per unit of f_lasti: 1 up to 3.9, sizeof(_Py_CODEUNIT) in 3.10
    // What only a suspended generator's frame sets: f_stacktop (2.7), f_gen (3.6 to 3.10)
    int64_t frame_suspended;

    // _PyInterpreterFrame (3.11+)
    int64_t iframe_size;
    int64_t iframe_previous;
    int64_t iframe_code;   // f_code in 3.11/3.12, f_executable in 3.13
    int64_t iframe_instr;  // prev_instr in 3.11/3.12, instr_ptr in 3.13
    int64_t iframe_owner;
    int64_t iframe_is_entry;  // 3.11 only
    int64_t iframe_localsplus;
    int64_t owner_generator;    // FRAME_OWNED_BY_GENERATOR
    int64_t owner_cstack;       // FRAME_OWNED_BY_CSTACK (3.12 to 3.14), -1 otherwise
    int64_t owner_interpreter;  // FRAME_OWNED_BY_INTERPRETER (3.14+: sentinel frames), -1 before

    // PyCodeObject
    int64_t code_size;
    int64_t code_filename;
    int64_t code_name;
    int64_t code_qualname;  // 3.11+
    int64_t code_firstlineno;
    int64_t code_linetable;       // co_lnotab up to 3.9, co_linetable from 3.10
    int64_t code_adaptive;        // co_code_adaptive, 3.11+
    int64_t code_firsttraceable;  // _co_firsttraceable, 3.11+
    int64_t code_varnames;        // up to 3.10, with code_cellvars and code_freevars
    int64_t code_cellvars;
    int64_t code_freevars;
    int64_t code_localsplusnames;  // 3.11+, with code_localspluskinds
    int64_t code_localspluskinds;

    // CO_FAST_* kinds of co_localspluskinds (3.11+; hidden from 3.12)
    int64_t fast_hidden;
    int64_t fast_local;
    int64_t fast_cell;
    int64_t fast_free;

    // _PyStackRef (3.14+): the tag bits of a local's value, and the tag of an int stored inline
    int64_t stackref_tag_bits;
    int64_t stackref_int_tag;

    // PyUnicodeObject
    int64_t unicode_length;
    int64_t unicode_state;
    int64_t unicode_ascii_data;    // sizeof(PyASCIIObject)
    int64_t unicode_compact_data;  // sizeof(PyCompactUnicodeObject)
    int64_t unicode_legacy_data;   // data.any, the pointer of a string that is not compact

    // Python 2's unicode objects
    int64_t unicode_py2_length;
    int64_t unicode_py2_str;
    int64_t unicode_py2_char_size;  // sizeof(Py_UNICODE): 2 or 4

    // PyBytesObject
    int64_t bytes_size;
    int64_t bytes_data;

    // Objects whose values `dump --locals` shows
    int64_t object_type;  // PyObject.ob_type
    int64_t var_size;     // PyVarObject.ob_size: the length of a tuple or list
    int64_t type_name;    // PyTypeObject.tp_name
    int64_t tuple_items;
    int64_t dict_used;
    int64_t set_used;
    int64_t cell_ref;
    int64_t float_value;
    int64_t int_value;           // Python 2's int: ob_ival
    int64_t long_size;           // ob_size (sign and digit count) up to 3.11, long_value.lv_tag from 3.12
    int64_t long_digits;         // ob_digit
    int64_t long_digit_size;     // sizeof(digit)
    int64_t long_shift;          // PyLong_SHIFT: bits per digit
    int64_t long_non_size_bits;  // _PyLong_NON_SIZE_BITS (3.12+): sign bits below the digit count in lv_tag

    // What thread names are read through: sys.modules, dicts and instance attributes
    int64_t interp_modules;         // PyInterpreterState: modules (to 3.11), imports.modules (3.12+)
    int64_t type_basicsize;         // PyTypeObject.tp_basicsize
    int64_t type_flags;             // tp_flags
    int64_t type_dictoffset;        // tp_dictoffset
    int64_t heap_cached_keys;       // PyHeapTypeObject.ht_cached_keys (3.11+: instances share the keys)
    int64_t tpflags_heaptype;       // Py_TPFLAGS_HEAPTYPE
    int64_t tpflags_managed_dict;   // Py_TPFLAGS_MANAGED_DICT (3.11+)
    int64_t tpflags_inline_values;  // Py_TPFLAGS_INLINE_VALUES (3.13+)
    int64_t dict_mask;              // PyDictObject.ma_mask (2.7's open table)
    int64_t dict_table;             // ma_table (2.7)
    int64_t dict_keys;              // ma_keys (3.x)
    int64_t dict_values;            // ma_values (3.x): a split table's values
    int64_t dict_values_array;      // offsetof(PyDictValues, values) (3.11+)
};

// The table generated by scripts/gen-layouts from each version's headers, oldest first.
std::span<const PythonLayout> all_layouts();
std::optional<PythonLayout> find_layout(int major, int minor);

}  // namespace pysample::sampler
