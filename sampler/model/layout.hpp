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

    // Suspended generators and coroutines: their frame, and what they await on its value stack
    int64_t gen_frame;        // gi_frame (to 3.10): a PyFrameObject
    int64_t gen_iframe;       // gi_iframe (3.11+): the frame inside the generator
    int64_t gen_frame_state;  // gi_frame_state (3.11+)
    // f_state's (3.10) and gi_frame_state's (3.11+) values. FRAME_CREATED is never -1, the others
    // may be: they are counted from it.
    int64_t frame_state_created;            // FRAME_CREATED
    int64_t frame_state_suspended;          // FRAME_SUSPENDED - FRAME_CREATED
    int64_t frame_state_yield_from;         // FRAME_SUSPENDED_YIELD_FROM - FRAME_CREATED (3.13+)
    int64_t frame_state_yield_from_locked;  // FRAME_SUSPENDED_YIELD_FROM_LOCKED - FRAME_CREATED (3.15+)
    int64_t frame_stacktop;                 // f_stacktop (to 3.9): past the top of a suspended frame's values
    int64_t frame_valuestack;               // f_valuestack (3.10)
    int64_t frame_stackdepth;               // f_stackdepth (3.10)
    int64_t iframe_stacktop;                // stacktop (3.11 to 3.13): past the top, counted in localsplus
    int64_t iframe_stackpointer;            // stackpointer (3.14+)
    int64_t code_code;                      // co_code (to 3.10)
    int64_t opcode_yield_from;              // YIELD_FROM (to 3.10)

    // What an instruction is and what its argument names (--opcodes)
    int64_t code_bytecode;  // co_code (to 3.10); from 3.11 the instructions are inline at code_adaptive
    int64_t code_consts;
    int64_t code_names;
    int64_t code_monitoring;                 // _co_monitoring (3.12+)
    int64_t monitoring_lines;                // _PyCoMonitoringData.lines
    int64_t monitoring_instruction_opcodes;  // _PyCoMonitoringData.per_instruction_opcodes
    int64_t line_entry_size;                 // a line entry's size (3.12, 3.13)
    int64_t line_entry_size_field;           // where the line data says its entries' size (3.14+)
    int64_t line_entry_opcode;               // the original opcode's place in an entry (or in the data)

    // The plain objects asyncio's tasks are linked by
    int64_t type_base;                    // PyTypeObject.tp_base
    int64_t list_items;                   // PyListObject.ob_item
    int64_t set_mask;                     // PySetObject.mask
    int64_t set_table;                    // PySetObject.table: mask + 1 setentry {key, hash}
    int64_t weakref_object;               // PyWeakReference.wr_object
    int64_t method_self;                  // PyMethodObject.im_self
    int64_t cfunction_self;               // PyCFunctionObject.m_self
    int64_t function_closure;             // PyFunctionObject.func_closure
    int64_t tstate_dict;                  // PyThreadState.dict (to 3.12): holds the thread's running event loop
    int64_t tstate_asyncio_running_loop;  // _PyThreadStateImpl.asyncio_running_loop (3.13; 3.14+ publish it)

    // _asyncio's own structs, private to its module: from the debug information of each build's module
    int64_t task_loop;        // FutureObj/TaskObj: fut_loop (a future's fields start a task)
    int64_t task_callback0;   // fut_callback0: the first done-callback
    int64_t task_callbacks;   // fut_callbacks: a list of (callback, context) for the others
    int64_t task_state;       // fut_state: STATE_PENDING 0, STATE_CANCELLED 1, STATE_FINISHED 2
    int64_t task_fut_waiter;  // task_fut_waiter: the future a suspended task waits for
    int64_t task_coro;
    int64_t task_name;                 // 3.8+
    int64_t task_awaited_by;           // 3.14+: a task or future awaiting it, or a set of them
    int64_t task_awaited_by_is_set;    // 3.14+
    int64_t task_size;                 // sizeof(TaskObj)
    int64_t future_iter_future;        // FutureIter.future: what `await future` leaves on the awaiting frame
    int64_t running_loop_holder_loop;  // PyRunningLoopHolder.rl_loop (to 3.11)
};

// The table generated by scripts/gen-layouts from each version's headers, oldest first.
std::span<const PythonLayout> all_layouts();
std::optional<PythonLayout> find_layout(int major, int minor);

}  // namespace pysample::sampler
