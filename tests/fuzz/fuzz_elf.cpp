// ElfFile over an arbitrary image: every section, segment, note and symbol it reports must lie in
// the image, and no lookup may read outside it.
#include <elf.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <span>
#include <stdexcept>
#include <string_view>
#include <vector>

#include "attach/maps.hpp"
#include "symbolize/elf.hpp"

using pysample::symbolize::ElfFile;

namespace {

constexpr std::size_t kMaxNames = 1024;

// Reads both ends of a span, so that the address sanitizer sees any span reaching past the image.
void touch(std::span<const std::uint8_t> bytes) {
    if (bytes.empty()) return;
    volatile std::uint8_t sink = bytes.front();
    sink = bytes.back();
    (void)sink;
}

void require(bool condition) {
    if (!condition) std::abort();
}

void check_sections(const ElfFile& elf) {
    for (const auto& section : elf.sections()) {
        auto data = elf.section_data(section);
        touch(data);
        require(data.empty() || data.size() == section.size);
    }
}

void check_segments(const ElfFile& elf) {
    for (const auto& segment : elf.load_segments()) {
        touch(elf.bytes_at_vaddr(segment.vaddr, 1));
        touch(elf.bytes_at_vaddr(segment.vaddr, static_cast<std::size_t>(segment.filesz)));
        touch(elf.bytes_at_vaddr(segment.vaddr + segment.filesz / 2, 16));
        pysample::attach::MapEntry mapping{0x7f0000000000, 0x7f0000100000, segment.offset, "r-xp", "/fuzz"};
        (void)elf.load_bias(mapping);
    }
}

// Looks up the names of a string table: those of .dynstr and .strtab are the symbols the file
// defines, found through .gnu.hash until the first miss and through the full index after it.
void look_up_names(const ElfFile& elf, std::span<const std::uint8_t> strings, std::size_t& budget) {
    std::string_view text(reinterpret_cast<const char*>(strings.data()), strings.size());
    while (!text.empty() && budget > 0) {
        std::string_view name = text.substr(0, text.find('\0'));
        text.remove_prefix(std::min(text.size(), name.size() + 1));
        if (name.empty()) continue;
        (void)elf.symbol(name);
        --budget;
    }
}

void check_symbols(const ElfFile& elf) {
    std::size_t budget = kMaxNames;
    for (const auto& section : elf.sections()) {
        if (section.type == SHT_STRTAB) look_up_names(elf, elf.section_data(section), budget);
    }
    for (std::string_view name : {"_PyRuntime", "Py_Version", "missing_symbol"}) (void)elf.symbol(name);
    (void)elf.has_symtab();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    try {
        ElfFile elf("fuzz-input", std::vector<std::uint8_t>(data, data + size));
        require(elf.image().size() == size);
        check_sections(elf);
        check_segments(elf);
        (void)elf.build_id();
        check_symbols(elf);
    } catch (const std::runtime_error&) {
        // Refused as not a usable ELF file: the expected outcome for most inputs.
    }
    return 0;
}
