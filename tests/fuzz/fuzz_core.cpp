// parse_core over arbitrary bytes: it either refuses them as bad input or returns a layout whose
// segments and files are in order and within what the bytes hold.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <span>

#include "attach/core_file.hpp"
#include "attach/error.hpp"

namespace {

void require(bool condition) {
    if (!condition) std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    pysample::attach::CoreLayout core;
    try {
        core = pysample::attach::parse_core(std::span<const std::uint8_t>(data, size), "input");
    } catch (const pysample::attach::Error& e) {
        require(e.kind() == pysample::attach::ErrorKind::BadInput);
        return 0;
    }
    require(!core.threads.empty());
    require(core.file_size == size);
    for (std::size_t i = 0; i < core.segments.size(); ++i) {
        const auto& segment = core.segments[i];
        require(segment.present <= segment.filesz && segment.filesz <= segment.memsz);
        require(segment.present == 0 || segment.offset + segment.present <= size);
        if (i > 0) require(core.segments[i - 1].vaddr <= segment.vaddr);
    }
    for (const auto& file : core.files) require(file.start < file.end);
    return 0;
}
