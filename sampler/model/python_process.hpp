// Finds the interpreter inside a target process: which binary carries it, its version, the
// runtime's address and the struct layouts to read it with.
#pragma once

#include <sys/types.h>

#include <memory>
#include <optional>
#include <set>
#include <string>

#include "attach/maps.hpp"
#include "attach/memory.hpp"
#include "attach/target.hpp"
#include "model/layout.hpp"
#include "model/python_error.hpp"
#include "model/python_version.hpp"
#include "symbolize/elf.hpp"
#include "symbolize/pycode.hpp"

namespace pysample::sampler {

// Addresses in the target of the interpreter's builtin types and singletons, from its binary's
// symbols; 0 where the binary has no such symbol.
struct BuiltinObjects {
    std::uint64_t none = 0;          // _Py_NoneStruct
    std::uint64_t true_object = 0;   // _Py_TrueStruct
    std::uint64_t false_object = 0;  // _Py_FalseStruct (_Py_ZeroStruct in 2.7)
    std::uint64_t int_type = 0;      // PyInt_Type: 2.7's int
    std::uint64_t long_type = 0;     // PyLong_Type: int from 3.0, long in 2.7
    std::uint64_t bool_type = 0;
    std::uint64_t float_type = 0;
    std::uint64_t unicode_type = 0;  // PyUnicode_Type: str from 3.0, unicode in 2.7
    std::uint64_t bytes_type = 0;    // PyBytes_Type: bytes from 3.0, str (PyString_Type) in 2.7
    std::uint64_t list_type = 0;
    std::uint64_t tuple_type = 0;
    std::uint64_t dict_type = 0;
    std::uint64_t set_type = 0;
    std::uint64_t frozenset_type = 0;
    std::uint64_t cell_type = 0;
};

class PythonProcess {
public:
    // Throws attach::Error (NoSuchProcess, PermissionDenied) or PythonError (NotPython,
    // UnsupportedVersion).
    PythonProcess(pid_t pid, std::optional<PythonVersion> version_override = std::nullopt);
    // The interpreter of any target: a live process or a core file.
    explicit PythonProcess(std::unique_ptr<attach::Target> target,
                           std::optional<PythonVersion> version_override = std::nullopt);

    pid_t pid() const { return pid_; }
    attach::Target& target() const { return *target_; }
    const PythonVersion& version() const { return version_; }
    const PythonLayout& layout() const { return layout_; }
    const VersionFacts& facts() const { return facts_; }
    const std::string& binary_path() const { return binary_path_; }
    // The interpreter's file was deleted or replaced on disk (an upgrade) after the process loaded it.
    bool binary_replaced() const { return binary_replaced_; }
    attach::Memory& memory() { return target_->memory(); }
    // _PyRuntime (3.7+), 0 before 3.7.
    std::uint64_t runtime_address() const { return runtime_address_; }
    // True when the interpreter's own _Py_DebugOffsets were read and checked against the table.
    bool layout_checked() const { return layout_from_debug_offsets_; }
    // Where the pointer to the first interpreter lives: _PyRuntime.interpreters.head (3.7+) or
    // pystate.c's static interp_head (2.7, 3.6, found in .symtab).
    std::uint64_t interpreter_head_address() const { return interpreter_head_address_; }
    std::uint64_t code_type_address() const { return code_type_address_; }
    const BuiltinObjects& builtins() const { return builtins_; }
    // The global _PyThreadState_Current of 2.7 and 3.6 (the thread holding the GIL); 0 otherwise.
    std::uint64_t thread_state_current_address() const { return thread_state_current_address_; }
    symbolize::CodeObjectLayout code_layout() const;
    // Whether the thread running a sub-interpreter's thread state can be found: from 3.13 each
    // thread gets a state of its own, bound to it; 3.10 to 3.12 may run a state on another thread
    // than its creator, but its _PyCFrame then lies on that thread's C stack. Before 3.10 neither.
    bool knows_subinterpreter_threads() const {
        return layout_.tstate_cframe >= 0 || facts_.thread_states_bound_to_threads;
    }
    // Address of the first interpreter, 0 while the runtime is not initialised yet.
    std::uint64_t interpreter_head(attach::Memory& memory) const;

private:
    struct Candidate {
        std::string path;  // as in the target's maps
        std::unique_ptr<symbolize::ElfFile> elf;
        std::uint64_t bias = 0;
        bool replaced = false;  // the file at its path is no longer the one mapped
    };
    // A binary defines the interpreter runtime when it has _PyRuntime (3.7+) or interp_head (a
    // local symbol before 3.7, so only in an unstripped .symtab).
    static bool defines_runtime(const symbolize::ElfFile& elf);
    // Defines the C API (Py_Initialize) without either symbol above: a stripped pre-3.7 build.
    static bool defines_python_api(const symbolize::ElfFile& elf);
    std::optional<Candidate> find_interpreter_binary(const std::vector<attach::MapEntry>& maps);
    PythonVersion detect_version(const Candidate& binary);
    void check_debug_offsets();
    void find_builtins(const Candidate& binary);
    [[noreturn]] void refuse_free_threaded(const std::string& evidence);

    std::unique_ptr<attach::Target> target_;
    pid_t pid_;
    std::string label_;  // the target's, for messages
    PythonVersion version_;
    PythonLayout layout_{};
    VersionFacts facts_;
    std::string binary_path_;
    std::uint64_t runtime_address_ = 0;
    std::uint64_t interpreter_head_address_ = 0;
    std::string stripped_binary_;    // a Python binary passed over for lacking the runtime symbols
    std::string unopenable_binary_;  // why a mapped Python binary could not be opened
    std::uint64_t code_type_address_ = 0;
    BuiltinObjects builtins_;
    std::uint64_t thread_state_current_address_ = 0;
    bool layout_from_debug_offsets_ = false;
    bool binary_replaced_ = false;
};

}  // namespace pysample::sampler
