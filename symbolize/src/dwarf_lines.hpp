// Source file and line of link-time addresses, from the DWARF of one ELF file.
#pragma once

#include <elfutils/libdw.h>
#include <unistd.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace pysample::symbolize {

struct SourceLine {
    std::string file;  // as recorded in the line table
    int line = 0;
};

// Keeps the file open with libdw for repeated queries.
class DwarfLines {
public:
    // Throws std::runtime_error naming the path when the file cannot be opened or has no DWARF.
    explicit DwarfLines(const std::string& path);

    std::optional<SourceLine> find(std::uint64_t link_address);

private:
    struct UnitRange {
        std::uint64_t low = 0;
        std::uint64_t high = 0;  // one past the end
        Dwarf_Die unit;
    };

    bool unit_containing(std::uint64_t link_address, Dwarf_Die& unit);
    void index_unit_ranges();

    class FileDescriptor {
    public:
        explicit FileDescriptor(int fd) : fd_(fd) {}
        ~FileDescriptor() {
            if (fd_ >= 0) ::close(fd_);
        }
        FileDescriptor(const FileDescriptor&) = delete;
        FileDescriptor& operator=(const FileDescriptor&) = delete;
        int get() const { return fd_; }

    private:
        int fd_;
    };
    struct DwarfEnd {
        void operator()(Dwarf* dwarf) const { dwarf_end(dwarf); }
    };

    FileDescriptor fd_;  // declared before dwarf_, which reads through it until dwarf_end
    std::unique_ptr<Dwarf, DwarfEnd> dwarf_;
    bool units_indexed_ = false;
    std::vector<UnitRange> units_;  // sorted by low
};

}  // namespace pysample::symbolize
