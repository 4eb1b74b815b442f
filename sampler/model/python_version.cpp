#include "model/python_version.hpp"

#include <cctype>
#include <regex>
#include <vector>

#include "attach/maps.hpp"
#include "model/layout.hpp"

namespace pysample::sampler {

bool is_free_threaded_file_name(std::string_view path) {
    static const std::regex pattern(R"((?:lib)?python3\.\d+[a-z]*t[a-z]*(?:\.so.*)?)");
    std::string base = attach::base_name(path);
    return std::regex_match(base, pattern);
}

namespace {

// Whether a string can end in a version: a digit or '+' last, and "2." or "3." among its last 12
// characters. A regular expression over every string of a large .rodata takes seconds under
// sanitizers, and a process caught while it execs may leave no other way to the version.
bool may_end_in_version(std::string_view text) {
    if (text.empty() || !(std::isdigit(static_cast<unsigned char>(text.back())) || text.back() == '+')) return false;
    std::string_view tail = text.substr(text.size() > 12 ? text.size() - 12 : 0);
    return tail.find("3.") != std::string_view::npos || tail.find("2.") != std::string_view::npos;
}

}  // namespace

// The interpreter's PY_VERSION literal ("3.11.7") in read-only data. The linker may store it as
// the tail of a longer string that ends the same way (a build path ending in "Python-3.10.13"),
// so a version at the end of any string counts when a non-version character precedes it.
std::set<std::pair<int, int>> version_strings_in(const symbolize::ElfFile& elf) {
    std::set<std::pair<int, int>> found;
    const auto* rodata = elf.section(".rodata");
    if (rodata == nullptr) return found;
    auto bytes = elf.section_data(*rodata);
    static const std::regex pattern(R"((?:^|[^0-9.])([23])\.(\d{1,2})\.(\d{1,2})(?:(?:a|b|rc)\d{1,2})?\+?$)");
    std::size_t start = 0;
    for (std::size_t i = 0; i < bytes.size(); ++i) {
        if (bytes[i] != 0) continue;
        std::size_t len = i - start;
        if (len >= 5 && len <= 512 &&
            may_end_in_version(std::string_view(reinterpret_cast<const char*>(bytes.data() + start), len))) {
            std::string text(reinterpret_cast<const char*>(bytes.data() + start), len);
            std::smatch match;
            if (std::regex_search(text, match, pattern)) found.emplace(std::stoi(match[1]), std::stoi(match[2]));
        }
        start = i + 1;
    }
    return found;
}

std::string PythonVersion::to_string() const {
    std::string text = std::to_string(major) + "." + std::to_string(minor);
    if (micro >= 0) text += "." + std::to_string(micro);
    return text;
}

std::optional<PythonVersion> parse_version_text(std::string_view text) {
    static const std::regex pattern(R"(([23])\.(\d{1,2})(?:\.(\d{1,2}))?.*)");
    std::string owned(text);
    std::smatch match;
    if (!std::regex_match(owned, match, pattern)) return std::nullopt;
    PythonVersion version;
    version.major = std::stoi(match[1]);
    version.minor = std::stoi(match[2]);
    if (match[3].matched) version.micro = std::stoi(match[3]);
    return version;
}

std::optional<PythonVersion> version_from_file_name(std::string_view path) {
    static const std::regex pattern(R"((?:lib)?python([23])\.(\d{1,2})[a-z]*(?:\.so.*|-.*)?)");
    std::string base = attach::base_name(path);
    std::smatch match;
    if (!std::regex_match(base, match, pattern)) return std::nullopt;
    PythonVersion version;
    version.major = std::stoi(match[1]);
    version.minor = std::stoi(match[2]);
    version.source = "file name";
    return version;
}

std::optional<PythonVersion> version_from_hex(std::uint64_t hex, std::string source) {
    if ((hex >> 24) != 3) return std::nullopt;
    return PythonVersion{static_cast<int>(hex >> 24), static_cast<int>((hex >> 16) & 0xff),
                         static_cast<int>((hex >> 8) & 0xff), std::move(source)};
}

std::string supported_versions_text() {
    // Runs of consecutive minor versions of one major version, each written "A" or "A to B".
    std::vector<std::pair<PythonLayout, PythonLayout>> runs;
    for (const PythonLayout& layout : all_layouts()) {
        if (!runs.empty() && runs.back().second.major == layout.major && runs.back().second.minor + 1 == layout.minor) {
            runs.back().second = layout;
        } else {
            runs.emplace_back(layout, layout);
        }
    }
    auto name = [](const PythonLayout& layout) {
        return std::to_string(layout.major) + "." + std::to_string(layout.minor);
    };
    std::string text;
    for (std::size_t i = 0; i < runs.size(); ++i) {
        if (i > 0) text += i + 1 == runs.size() ? " and " : ", ";
        const auto& [first, last] = runs[i];
        text += name(first);
        if (last.minor != first.minor) text += " to " + name(last);
    }
    return text;
}

VersionFacts version_facts(int major, int minor) {
    const std::pair version{major, minor};
    VersionFacts facts;
    if (version < std::pair{3, 10}) {
        facts.line_table = symbolize::LineTableFormat::Lnotab;
    } else if (version < std::pair{3, 11}) {
        facts.line_table = symbolize::LineTableFormat::Linetable310;
    }
    facts.signed_lnotab = version >= std::pair{3, 6};
    facts.python2_objects = major < 3;
    if (facts.python2_objects) {
        facts.code_strings = symbolize::StringKind::Bytes;
        facts.eval_function = "PyEval_EvalFrameEx";
        facts.thread_name_attribute = "_Thread__name";
    }
    facts.publishes_debug_offsets = version >= std::pair{3, 13};
    facts.thread_states_bound_to_threads = version >= std::pair{3, 13};
    if (major < 3) {
        facts.dict_format = DictFormat::Open27;
    } else if (version < std::pair{3, 11}) {
        facts.dict_format = DictFormat::Compact36;
    }
    if (version < std::pair{3, 11}) {
        facts.instance_format = InstanceDictFormat::DictOffset;
    } else if (version < std::pair{3, 12}) {
        facts.instance_format = InstanceDictFormat::Managed311;
    } else if (version < std::pair{3, 13}) {
        facts.instance_format = InstanceDictFormat::DictOrValues312;
    }
    if (major < 3) {
        facts.int_format = IntFormat::Int27;
    } else if (version < std::pair{3, 12}) {
        facts.int_format = IntFormat::ObSize;
    }
    facts.reads_asyncio_tasks = version >= std::pair{3, 8};
    if (version < std::pair{3, 12}) {
        facts.asyncio_task_set = "_all_tasks";
        facts.asyncio_eager_task_set = {};
    }
    facts.publishes_asyncio_debug_offsets = version >= std::pair{3, 14};
    facts.awaited_slot = version >= std::pair{3, 15} ? 2 : 1;
    return facts;
}

symbolize::CodeObjectLayout code_object_layout(const PythonLayout& layout) {
    const VersionFacts facts = version_facts(layout.major, layout.minor);
    symbolize::CodeObjectLayout code;
    code.size = layout.code_size;
    code.filename = layout.code_filename;
    code.name = layout.code_name;
    code.qualname = layout.code_qualname;
    code.firstlineno = layout.code_firstlineno;
    code.linetable = layout.code_linetable;
    code.firsttraceable = layout.code_firsttraceable;
    code.unicode_length = layout.unicode_length;
    code.unicode_state = layout.unicode_state;
    code.unicode_ascii_data = layout.unicode_ascii_data;
    code.unicode_compact_data = layout.unicode_compact_data;
    code.unicode_legacy_data = layout.unicode_legacy_data;
    code.bytes_size = layout.bytes_size;
    code.bytes_data = layout.bytes_data;
    code.format = facts.line_table;
    code.signed_lnotab = facts.signed_lnotab;
    code.strings = facts.code_strings;
    return code;
}

}  // namespace pysample::sampler
