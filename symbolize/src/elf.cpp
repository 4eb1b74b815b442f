#include "symbolize/elf.hpp"

#include <elf.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <stdexcept>
#include <utility>

#include "attach/file_descriptor.hpp"
#include "attach/maps.hpp"

namespace pysample::symbolize {
namespace {

using attach::FileDescriptor;

}  // namespace

ElfFile::ElfFile(const std::string& path) : path_(path) {
    FileDescriptor fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
    if (fd.get() < 0) throw std::runtime_error("cannot open " + path + ": " + std::strerror(errno));
    struct stat st {};
    if (::fstat(fd.get(), &st) != 0 || st.st_size < static_cast<off_t>(sizeof(Elf64_Ehdr))) {
        throw std::runtime_error(path + " is too small to be an ELF file");
    }
    size_ = static_cast<std::size_t>(st.st_size);
    void* mapped = ::mmap(nullptr, size_, PROT_READ, MAP_PRIVATE, fd.get(), 0);
    if (mapped == MAP_FAILED) throw std::runtime_error("cannot map " + path + ": " + std::strerror(errno));
    data_ = static_cast<const std::uint8_t*>(mapped);
    try {
        parse();
    } catch (...) {
        ::munmap(const_cast<std::uint8_t*>(data_), size_);
        throw;
    }
}

ElfFile::ElfFile(std::string name, std::vector<std::uint8_t> image) : path_(std::move(name)), owned_(std::move(image)) {
    if (owned_.size() < sizeof(Elf64_Ehdr)) throw std::runtime_error(path_ + " is too small to be an ELF image");
    data_ = owned_.data();
    size_ = owned_.size();
    parse();
}

ElfFile::~ElfFile() {
    if (owned_.empty()) ::munmap(const_cast<std::uint8_t*>(data_), size_);
}

void ElfFile::parse() {
    Elf64_Ehdr header;
    std::memcpy(&header, data_, sizeof(header));
    if (std::memcmp(header.e_ident, ELFMAG, SELFMAG) != 0) throw std::runtime_error(path_ + " is not an ELF file");
    if (header.e_ident[EI_CLASS] != ELFCLASS64 || header.e_ident[EI_DATA] != ELFDATA2LSB) {
        throw std::runtime_error(path_ + " is not a 64-bit little-endian ELF file");
    }
    type_is_dyn_ = header.e_type == ET_DYN;

    auto in_file = [&](std::uint64_t offset, std::uint64_t count, std::uint64_t entsize) {
        return offset <= size_ && count * entsize <= size_ - offset;
    };
    if (!in_file(header.e_phoff, header.e_phnum, sizeof(Elf64_Phdr)) ||
        !in_file(header.e_shoff, header.e_shnum, sizeof(Elf64_Shdr))) {
        throw std::runtime_error(path_ + " has headers beyond the end of the file");
    }
    for (std::size_t i = 0; i < header.e_phnum; ++i) {
        Elf64_Phdr ph;
        std::memcpy(&ph, data_ + header.e_phoff + i * sizeof(Elf64_Phdr), sizeof(ph));
        if (ph.p_type == PT_LOAD) segments_.push_back({ph.p_vaddr, ph.p_offset, ph.p_filesz, ph.p_memsz});
    }

    std::vector<Elf64_Shdr> raw(header.e_shnum);
    for (std::size_t i = 0; i < raw.size(); ++i) {
        std::memcpy(&raw[i], data_ + header.e_shoff + i * sizeof(Elf64_Shdr), sizeof(Elf64_Shdr));
    }
    const Elf64_Shdr* names = header.e_shstrndx < raw.size() ? &raw[header.e_shstrndx] : nullptr;
    if (names != nullptr && !in_file(names->sh_offset, names->sh_size, 1)) names = nullptr;
    for (const auto& sh : raw) {
        Section section{{}, sh.sh_addr, sh.sh_offset, sh.sh_size, sh.sh_type, sh.sh_link};
        if (names != nullptr && sh.sh_name < names->sh_size) {
            const char* start = reinterpret_cast<const char*>(data_ + names->sh_offset + sh.sh_name);
            section.name.assign(start, ::strnlen(start, names->sh_size - sh.sh_name));
        }
        sections_.push_back(std::move(section));
    }
}

const ElfFile::Section* ElfFile::section(std::string_view name) const {
    for (const auto& section : sections_) {
        if (section.name == name) return &section;
    }
    return nullptr;
}

std::span<const std::uint8_t> ElfFile::section_data(const Section& section) const {
    if (section.type == SHT_NOBITS || section.offset > size_ || section.size > size_ - section.offset) return {};
    return {data_ + section.offset, section.size};
}

void ElfFile::index_symbols(const Section& symtab) const {
    if (symtab.offset > size_ || symtab.size > size_ - symtab.offset || symtab.link >= sections_.size()) return;
    auto string_bytes = section_data(sections_[symtab.link]);
    std::size_t count = symtab.size / sizeof(Elf64_Sym);
    for (std::size_t i = 0; i < count; ++i) {
        Elf64_Sym sym;
        std::memcpy(&sym, data_ + symtab.offset + i * sizeof(Elf64_Sym), sizeof(sym));
        if (sym.st_shndx == SHN_UNDEF || sym.st_name >= string_bytes.size()) continue;
        const char* name = reinterpret_cast<const char*>(string_bytes.data() + sym.st_name);
        std::string_view view(name, ::strnlen(name, string_bytes.size() - sym.st_name));
        symbols_.try_emplace(view, sym.st_value);
    }
}

// The dynamic linker's own index of .dynsym (.gnu.hash): finds an exported symbol without
// reading every symbol of a large library such as libpython.
std::optional<std::uint64_t> ElfFile::dynamic_symbol(std::string_view name) const {
    const Section* hash = nullptr;
    for (const auto& section : sections_) {
        if (section.type == SHT_GNU_HASH) hash = &section;
    }
    if (hash == nullptr || hash->link >= sections_.size()) return std::nullopt;
    const Section& dynsym = sections_[hash->link];
    if (dynsym.link >= sections_.size()) return std::nullopt;
    auto table = section_data(*hash);
    auto symbols = section_data(dynsym);
    auto strings = section_data(sections_[dynsym.link]);
    auto word = [&](std::size_t index, std::uint32_t& out) {
        if ((index + 1) * 4 > table.size()) return false;
        std::memcpy(&out, table.data() + index * 4, 4);
        return true;
    };
    std::uint32_t buckets = 0, first_symbol = 0, bloom_words = 0;
    if (!word(0, buckets) || !word(1, first_symbol) || !word(2, bloom_words) || buckets == 0) return std::nullopt;
    std::uint32_t h = 5381;
    for (char c : name) h = h * 33 + static_cast<std::uint8_t>(c);
    std::size_t bucket_base = 4 + std::size_t{bloom_words} * 2;  // 64-bit bloom words
    std::size_t chain_base = bucket_base + buckets;
    std::uint32_t index = 0;
    if (!word(bucket_base + h % buckets, index) || index < first_symbol) return std::nullopt;
    for (;; ++index) {
        std::uint32_t chain_hash = 0;
        if (!word(chain_base + (index - first_symbol), chain_hash)) return std::nullopt;
        if ((chain_hash | 1) == (h | 1) && (std::size_t{index} + 1) * sizeof(Elf64_Sym) <= symbols.size()) {
            Elf64_Sym sym;
            std::memcpy(&sym, symbols.data() + std::size_t{index} * sizeof(Elf64_Sym), sizeof(sym));
            if (sym.st_name < strings.size()) {
                const char* text = reinterpret_cast<const char*>(strings.data() + sym.st_name);
                if (std::string_view(text, ::strnlen(text, strings.size() - sym.st_name)) == name &&
                    sym.st_shndx != SHN_UNDEF) {
                    return sym.st_value;
                }
            }
        }
        if (chain_hash & 1) return std::nullopt;
    }
}

std::optional<std::uint64_t> ElfFile::symbol(std::string_view name) const {
    if (!symbols_indexed_) {
        if (auto exported = dynamic_symbol(name)) return exported;
        for (const auto& section : sections_) {
            if (section.type == SHT_DYNSYM || section.type == SHT_SYMTAB) index_symbols(section);
        }
        symbols_indexed_ = true;
    }
    auto it = symbols_.find(name);
    if (it == symbols_.end()) return std::nullopt;
    return it->second;
}

std::span<const std::uint8_t> ElfFile::bytes_at_vaddr(std::uint64_t vaddr, std::size_t len) const {
    for (const auto& seg : segments_) {
        if (vaddr < seg.vaddr || vaddr - seg.vaddr >= seg.filesz || len > seg.filesz - (vaddr - seg.vaddr)) continue;
        std::uint64_t offset = seg.offset + (vaddr - seg.vaddr);
        if (offset > size_ || len > size_ - offset) return {};
        return {data_ + offset, len};
    }
    return {};
}

std::string ElfFile::build_id() const {
    const Section* note = section(".note.gnu.build-id");
    if (note == nullptr) return {};
    auto bytes = section_data(*note);
    if (bytes.size() < sizeof(Elf64_Nhdr)) return {};
    Elf64_Nhdr header;
    std::memcpy(&header, bytes.data(), sizeof(header));
    std::size_t name_size = (header.n_namesz + 3) & ~std::size_t{3};
    if (header.n_type != NT_GNU_BUILD_ID || sizeof(header) + name_size + header.n_descsz > bytes.size()) return {};
    static constexpr char kHex[] = "0123456789abcdef";
    std::string id;
    for (std::size_t i = 0; i < header.n_descsz; ++i) {
        std::uint8_t byte = bytes[sizeof(header) + name_size + i];
        id += kHex[byte >> 4];
        id += kHex[byte & 0xf];
    }
    return id;
}

std::uint64_t ElfFile::load_bias(const attach::MapEntry& lowest_mapping) const {
    if (!type_is_dyn_) return 0;
    for (const auto& seg : segments_) {
        std::uint64_t page_offset = seg.offset & ~std::uint64_t{0xfff};
        if (lowest_mapping.offset >= page_offset && lowest_mapping.offset < seg.offset + seg.filesz) {
            return lowest_mapping.start - lowest_mapping.offset - (seg.vaddr - seg.offset);
        }
    }
    return lowest_mapping.start - lowest_mapping.offset;
}

}  // namespace pysample::symbolize
