#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace pysample::attach {
struct MapEntry;
}

namespace pysample::symbolize {

// A read-only view of a 64-bit little-endian ELF file: its sections, symbols and load segments.
class ElfFile {
public:
    struct Section {
        std::string name;
        std::uint64_t addr = 0;
        std::uint64_t offset = 0;
        std::uint64_t size = 0;
        std::uint32_t type = 0;
        std::uint32_t link = 0;
    };
    struct Segment {
        std::uint64_t vaddr = 0;
        std::uint64_t offset = 0;
        std::uint64_t filesz = 0;
        std::uint64_t memsz = 0;
    };

    // Throws std::runtime_error naming the path and what was wrong.
    explicit ElfFile(const std::string& path);
    // An image copied out of a process (the kernel's vDSO has no file); `name` is for messages.
    ElfFile(std::string name, std::vector<std::uint8_t> image);
    ~ElfFile();
    ElfFile(const ElfFile&) = delete;
    ElfFile& operator=(const ElfFile&) = delete;

    const std::string& path() const { return path_; }
    bool position_independent() const { return type_is_dyn_; }
    const std::vector<Section>& sections() const { return sections_; }
    const Section* section(std::string_view name) const;
    std::span<const std::uint8_t> section_data(const Section& section) const;
    const std::vector<Segment>& load_segments() const { return segments_; }
    // The file's bytes that a loader maps at link-time address `vaddr` (empty when not file-backed).
    std::span<const std::uint8_t> bytes_at_vaddr(std::uint64_t vaddr, std::size_t len) const;
    std::span<const std::uint8_t> image() const { return {data_, size_}; }
    // The GNU build id (.note.gnu.build-id) as lower-case hex, empty when absent.
    std::string build_id() const;

    // Value (link-time address) of a symbol from .symtab or .dynsym; nullopt when absent or undefined.
    std::optional<std::uint64_t> symbol(std::string_view name) const;
    bool has_symtab() const { return section(".symtab") != nullptr; }

    // Difference between where the file is mapped in a process and its link-time addresses, given
    // the mapping of the file with the lowest file offset.
    std::uint64_t load_bias(const attach::MapEntry& lowest_mapping) const;

private:
    void parse();
    void index_symbols(const Section& symtab) const;
    std::optional<std::uint64_t> dynamic_symbol(std::string_view name) const;

    std::string path_;
    const std::uint8_t* data_ = nullptr;
    std::size_t size_ = 0;
    std::vector<std::uint8_t> owned_;  // the image when it was not mapped from a file
    bool type_is_dyn_ = false;
    std::vector<Section> sections_;
    std::vector<Segment> segments_;
    mutable bool symbols_indexed_ = false;
    mutable std::unordered_map<std::string_view, std::uint64_t> symbols_;
};

// The start (link-time address) of the function that the module's unwind tables (.eh_frame_hdr)
// say contains `link_address`; nullopt when no table entry covers it.
std::optional<std::uint64_t> unwind_function_start(const ElfFile& elf, std::uint64_t link_address);

}  // namespace pysample::symbolize
