// The recording reader over arbitrary files, as a disk, a copy or a person may hand it. Input: the
// file's bytes after its 16-byte header, which is supplied so that the blocks are reached. The
// fuzzer's own inputs are rarely valid zlib with a matching CRC: a seed of real blocks, and the
// option of one block compressed here from the input's records, reach the records' decoder.
#include <zlib.h>

#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>

#include "exporters/recording.hpp"

namespace {

std::string le32(std::uint32_t value) {
    std::string out;
    for (int i = 0; i < 4; ++i) out += static_cast<char>((value >> (8 * i)) & 0xFF);
    return out;
}

// "PYSAMPLE-REC", format 1, then: the input as it is (first byte even), or the input's records
// compressed into one well-formed block (first byte odd).
std::string recording_from(const std::uint8_t* data, std::size_t size) {
    std::string file = "PYSAMPLE-REC" + le32(1);
    if (size == 0) return file;
    std::string rest(reinterpret_cast<const char*>(data) + 1, size - 1);
    if ((data[0] & 1) == 0) return file + rest;
    uLongf bound = compressBound(static_cast<uLong>(rest.size()));
    std::string compressed(bound, '\0');
    if (compress2(reinterpret_cast<Bytef*>(compressed.data()), &bound, reinterpret_cast<const Bytef*>(rest.data()),
                  static_cast<uLong>(rest.size()), 1) != Z_OK) {
        return file;
    }
    compressed.resize(bound);
    auto crc = crc32(0, reinterpret_cast<const Bytef*>(rest.data()), static_cast<uInt>(rest.size()));
    return file + "PBLK" + le32(static_cast<std::uint32_t>(compressed.size())) +
           le32(static_cast<std::uint32_t>(rest.size())) + le32(static_cast<std::uint32_t>(crc)) + compressed;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    pysample::exporters::RecordingReader reader(recording_from(data, size));
    std::uint64_t seen = 0;
    pysample::exporters::RecordingReader::Visitor visitor;
    visitor.sample = [&](const pysample::exporters::RecordedSample& sample) {
        // Every reference the reader hands on must be one it can resolve.
        const auto& stack = reader.stacks().at(sample.stack);
        for (auto frame : stack) seen += reader.frames().at(frame).line != 0;
        seen += reader.threads().at(sample.thread).info.id;
    };
    bool whole = reader.read(visitor);
    if (!whole && reader.damage().empty()) __builtin_trap();
    return seen == 0xFFFFFFFFFFFFFFFFULL ? 1 : 0;
}
