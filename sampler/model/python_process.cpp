#include "model/python_process.hpp"

#include <spdlog/spdlog.h>

#include <map>
#include <set>

#include "attach/error.hpp"
#include "attach/live_process.hpp"
#include "attach/threads.hpp"
#include "model/debug_offsets.hpp"
#include "model/python_error.hpp"

namespace pysample::sampler {
namespace {

using attach::Error;
using attach::ErrorKind;

bool looks_like_python_file(const std::string& path) {
    std::string base = attach::base_name(path);
    return base.rfind("libpython", 0) == 0 || base.rfind("python", 0) == 0;
}

// 3.14+ also put _PyRuntime alone in a section named .PyRuntime, which survives stripping.
std::optional<std::uint64_t> runtime_in(const symbolize::ElfFile& elf) {
    if (auto symbol = elf.symbol("_PyRuntime")) return symbol;
    if (const auto* section = elf.section(".PyRuntime"); section != nullptr && section->addr != 0) {
        return section->addr;
    }
    return std::nullopt;
}

// PyPy's interpreter lives in libpypy*-c.so, or in a pypy executable built without it.
std::optional<std::string> pypy_in(const std::vector<attach::MapEntry>& maps) {
    for (const auto& entry : maps) {
        std::string base = attach::base_name(entry.path);
        if (base.rfind("libpypy", 0) == 0 || base.rfind("pypy", 0) == 0) return entry.path;
    }
    return std::nullopt;
}

}  // namespace

PythonProcess::PythonProcess(pid_t pid, std::optional<PythonVersion> version_override)
    : PythonProcess(std::make_unique<attach::LiveProcess>(pid), version_override) {}

PythonProcess::PythonProcess(std::unique_ptr<attach::Target> target, std::optional<PythonVersion> version_override)
    : target_(std::move(target)), pid_(target_->pid()), label_(target_->label()) {
    auto maps = target_->maps();
    auto binary = find_interpreter_binary(maps);
    if (!binary && !stripped_binary_.empty()) {
        // A Python this build cannot read, rather than no Python: launch mode must not wait for it.
        throw PythonError(PythonErrorKind::UnsupportedVersion,
                          label_ + " runs Python from " + stripped_binary_ +
                              ", which has neither _PyRuntime (Python 3.7+) nor the symbol table entry interp_head "
                              "(Python 2.7, 3.6): the binary is stripped; install its debug symbols or use an "
                              "unstripped build (e.g. pyenv's)");
    }
    if (!binary && !unopenable_binary_.empty() && !target_->live()) {
        throw Error(ErrorKind::BadInput, label_ + " ran Python from a file that cannot be read here (" +
                                             unopenable_binary_ +
                                             "): pass --root DIR where the program's files are, or "
                                             "--executable PATH for its executable");
    }
    if (!binary) {
        if (auto pypy = pypy_in(maps)) {
            throw PythonError(PythonErrorKind::UnsupportedVersion,
                              label_ + " runs PyPy (" + *pypy +
                                  "): pysample reads CPython's interpreter only, and PyPy's is another one");
        }
        std::string exe = target_->executable();
        throw PythonError(PythonErrorKind::NotPython, label_ + (exe.empty() ? "" : " (" + exe + ")") +
                                                          " is not a Python process: no python binary or libpython "
                                                          "carrying the interpreter runtime is mapped");
    }
    binary_path_ = binary->path;
    binary_replaced_ = binary->replaced;
    if (binary_replaced_) {
        spdlog::warn(
            "process {}: {} was deleted or replaced on disk since the process loaded it; reading the "
            "file the process still maps",
            pid_, binary_path_);
    }
    if (is_free_threaded_file_name(binary_path_)) refuse_free_threaded("its file name");
    version_ = version_override ? *version_override : detect_version(*binary);
    auto layout = find_layout(version_.major, version_.minor);
    if (!layout) {
        throw PythonError(PythonErrorKind::UnsupportedVersion,
                          label_ + " runs Python " + version_.to_string() + " (found by " + version_.source + " in " +
                              binary_path_ +
                              "), which this build of pysample cannot read; supported: " + supported_versions_text());
    }
    layout_ = *layout;
    facts_ = version_facts(version_.major, version_.minor);
    if (layout_.runtime_interpreters_head >= 0) {
        auto runtime = runtime_in(*binary->elf);
        if (!runtime) {
            throw PythonError(PythonErrorKind::UnsupportedVersion,
                              label_ + ": " + binary_path_ + " looks like Python " + version_.to_string() +
                                  " (found by " + version_.source +
                                  ") but has no _PyRuntime symbol; if the version is wrong, pass --python-version X.Y");
        }
        runtime_address_ = binary->bias + *runtime;
        check_debug_offsets();
        interpreter_head_address_ = runtime_address_ + static_cast<std::uint64_t>(layout_.runtime_interpreters_head);
    } else {
        auto head = binary->elf->symbol("interp_head");
        if (!head) {
            throw PythonError(PythonErrorKind::UnsupportedVersion,
                              label_ + ": Python " + version_.to_string() + " (found by " + version_.source + " in " +
                                  binary_path_ +
                                  ") keeps its interpreter list in the static interp_head, which is not in the "
                                  "binary's symbol table: the binary is stripped, or the version is wrong (pass "
                                  "--python-version X.Y)");
        }
        interpreter_head_address_ = binary->bias + *head;
    }
    if (auto code_type = binary->elf->symbol("PyCode_Type")) code_type_address_ = binary->bias + *code_type;
    find_builtins(*binary);
    spdlog::debug("pid {}: Python {} ({}) in {}, interpreter list head at {:#x}, PyCode_Type at {:#x}", pid_,
                  version_.to_string(), version_.source, binary_path_, interpreter_head_address_, code_type_address_);
}

// libpython is preferred over the executable that links it: the runtime lives in the library.
std::optional<PythonProcess::Candidate> PythonProcess::find_interpreter_binary(
    const std::vector<attach::MapEntry>& maps) {
    std::map<std::string, const attach::MapEntry*> lowest;
    for (const auto& entry : maps) {
        if (entry.path.empty() || entry.path[0] != '/' || !looks_like_python_file(entry.path)) continue;
        auto& slot = lowest[entry.path];
        if (slot == nullptr || entry.offset < slot->offset) slot = &entry;
    }
    std::optional<Candidate> chosen;
    for (const auto& [path, mapping] : lowest) {
        try {
            bool replaced = false;
            auto elf = std::make_unique<symbolize::ElfFile>(target_->mapped_file(*mapping, &replaced));
            if (!defines_runtime(*elf)) {
                if (defines_python_api(*elf)) stripped_binary_ = path;
                continue;
            }
            Candidate candidate{path, std::move(elf), 0, replaced};
            candidate.bias = candidate.elf->load_bias(*mapping);
            bool is_library = attach::base_name(path).rfind("libpython", 0) == 0;
            if (!chosen || is_library) chosen = std::move(candidate);
        } catch (const std::exception& e) {
            spdlog::debug("pid {}: skipping {}: {}", pid_, path, e.what());
            if (unopenable_binary_.empty()) unopenable_binary_ = e.what();
        }
    }
    return chosen;
}

void PythonProcess::find_builtins(const Candidate& binary) {
    auto address_of = [&](std::initializer_list<const char*> names) -> std::uint64_t {
        for (const char* name : names) {
            if (auto symbol = binary.elf->symbol(name)) return binary.bias + *symbol;
        }
        return 0;
    };
    builtins_.none = address_of({"_Py_NoneStruct"});
    builtins_.true_object = address_of({"_Py_TrueStruct"});
    builtins_.false_object = address_of({"_Py_FalseStruct", "_Py_ZeroStruct"});
    builtins_.int_type = facts_.python2_objects ? address_of({"PyInt_Type"}) : 0;
    builtins_.long_type = address_of({"PyLong_Type"});
    builtins_.bool_type = address_of({"PyBool_Type"});
    builtins_.float_type = address_of({"PyFloat_Type"});
    builtins_.unicode_type = address_of({"PyUnicode_Type"});
    builtins_.bytes_type = address_of({"PyBytes_Type", "PyString_Type"});
    builtins_.list_type = address_of({"PyList_Type"});
    builtins_.tuple_type = address_of({"PyTuple_Type"});
    builtins_.dict_type = address_of({"PyDict_Type"});
    builtins_.set_type = address_of({"PySet_Type"});
    builtins_.frozenset_type = address_of({"PyFrozenSet_Type"});
    builtins_.cell_type = address_of({"PyCell_Type"});
    if (layout_.runtime_interpreters_head < 0) thread_state_current_address_ = address_of({"_PyThreadState_Current"});
}

bool PythonProcess::defines_runtime(const symbolize::ElfFile& elf) {
    return runtime_in(elf).has_value() || elf.symbol("interp_head").has_value();
}

bool PythonProcess::defines_python_api(const symbolize::ElfFile& elf) {
    return elf.symbol("Py_Initialize").has_value() && elf.symbol("PyThreadState_Get").has_value();
}

PythonVersion PythonProcess::detect_version(const Candidate& binary) {
    if (auto symbol = binary.elf->symbol("Py_Version")) {
        std::uint32_t hex = 0;
        if (memory().read_value(binary.bias + *symbol, hex)) {
            if (auto version = version_from_hex(hex, "Py_Version symbol")) return *version;
        }
    }
    if (auto runtime = runtime_in(*binary.elf)) {
        if (auto offsets = read_debug_offsets(memory(), binary.bias + *runtime)) {
            if (auto version = version_from_hex(offsets->version_hex, "_Py_DebugOffsets")) return *version;
        }
    }
    auto from_name = version_from_file_name(binary.path);
    auto strings = version_strings_in(*binary.elf);
    if (from_name && strings.count({from_name->major, from_name->minor}) != 0) {
        from_name->source = "version string";
        return *from_name;
    }
    if (strings.size() == 1) {
        return {strings.begin()->first, strings.begin()->second, -1, "version string"};
    }
    if (from_name) return *from_name;
    std::string seen;
    for (const auto& [major, minor] : strings) seen += " " + std::to_string(major) + "." + std::to_string(minor);
    throw PythonError(PythonErrorKind::UnsupportedVersion,
                      "cannot tell which Python version " + label_ + " runs (" + binary.path +
                          (seen.empty() ? ": no version string found" : ": candidate versions" + seen) +
                          "); pass --python-version X.Y");
}

void PythonProcess::refuse_free_threaded(const std::string& evidence) {
    throw PythonError(PythonErrorKind::UnsupportedVersion,
                      label_ + " runs a free-threaded (no-GIL) build of Python (" + binary_path_ + ", seen from " +
                          evidence + "), which pysample does not read yet; profile a regular build");
}

// 3.13+ describe their own layout. A free-threaded build is refused; otherwise the published
// offsets are checked for plausibility and take precedence over the built-in table where they
// differ, which is reported.
void PythonProcess::check_debug_offsets() {
    if (!facts_.publishes_debug_offsets) return;
    auto offsets = read_debug_offsets(memory(), runtime_address_);
    if (!offsets) {
        spdlog::warn(
            "pid {}: Python {} should carry _Py_DebugOffsets at {:#x} but does not; using pysample's own "
            "layout table",
            pid_, version_.to_string(), runtime_address_);
        return;
    }
    if (offsets->free_threaded) refuse_free_threaded("its _Py_DebugOffsets");
    if (offsets->major() != version_.major || offsets->minor() != version_.minor) {
        spdlog::warn("pid {}: _Py_DebugOffsets say Python {}.{}, not {}; using the table for {}", pid_,
                     offsets->major(), offsets->minor(), version_.to_string(), version_.to_string());
        return;
    }
    auto check = apply_debug_offsets(*offsets, layout_);
    if (!check.understood) {
        spdlog::warn("pid {}: cannot make sense of the _Py_DebugOffsets of Python {}; using pysample's own table", pid_,
                     version_.to_string());
        return;
    }
    layout_from_debug_offsets_ = true;
    if (check.differences.empty()) {
        spdlog::debug("pid {}: pysample's layout for Python {} agrees with the interpreter's _Py_DebugOffsets", pid_,
                      version_.to_string());
    }
    for (const auto& group : check.ignored) {
        spdlog::warn("pid {}: the _Py_DebugOffsets of Python {} for {} are not plausible; using pysample's own table",
                     pid_, version_.to_string(), group);
    }
    for (const auto& difference : check.differences) {
        spdlog::warn(
            "pid {}: Python {} publishes a different layout than pysample's table ({}); using the "
            "interpreter's",
            pid_, version_.to_string(), difference);
    }
}

symbolize::CodeObjectLayout PythonProcess::code_layout() const { return code_object_layout(layout_); }

std::uint64_t PythonProcess::interpreter_head(attach::Memory& memory) const {
    std::uint64_t head = 0;
    memory.read_value(interpreter_head_address_, head);
    return head;
}

}  // namespace pysample::sampler
