#include <zlib.h>

#include <map>
#include <stdexcept>

#include "exporters/recording.hpp"
#include "recording_format.hpp"

namespace pysample::exporters {

using recording::Decoder;
using recording::Malformed;

namespace {

constexpr std::uint64_t kMaxStackFrames = 1 << 20;

std::uint32_t little_endian_u32(std::string_view bytes) {
    std::uint32_t value = 0;
    for (int i = 0; i < 4; ++i) value |= static_cast<std::uint32_t>(static_cast<std::uint8_t>(bytes[i])) << (8 * i);
    return value;
}

std::uint32_t checked_index(std::uint64_t value, std::size_t size, const char* what) {
    if (value >= size) throw Malformed(std::string("a reference to a ") + what + " not defined before it");
    return static_cast<std::uint32_t>(value);
}

}  // namespace

bool looks_like_recording(std::string_view head) { return head.starts_with(recording::kMagic); }

RecordingReader::RecordingReader(std::string data) : data_(std::move(data)) {
    if (data_.size() < recording::kHeaderSize || !looks_like_recording(data_)) {
        throw std::runtime_error("not a pysample recording (it does not begin with " + std::string(recording::kMagic) +
                                 ")");
    }
    std::uint32_t version = little_endian_u32(std::string_view(data_).substr(recording::kMagic.size(), 4));
    if (version != recording::kVersion) {
        throw std::runtime_error("a recording of format " + std::to_string(version) + ", which this pysample (format " +
                                 std::to_string(recording::kVersion) + ") cannot read");
    }
    offset_ = recording::kHeaderSize;
}

bool RecordingReader::read(const Visitor& visitor) {
    std::string records;
    while (offset_ < data_.size()) {
        std::size_t block_start = offset_;
        if (!next_block(records)) return false;
        try {
            read_records(records, visitor);
        } catch (const Malformed& e) {
            damage_ = "block " + std::to_string(blocks_ + 1) + " at byte " + std::to_string(block_start) +
                      " is malformed: " + e.what();
            return false;
        }
        ++blocks_;
    }
    return true;
}

// The next block's records, checked whole; false (with damage_ said) when it is cut short or damaged.
bool RecordingReader::next_block(std::string& records) {
    std::string_view rest = std::string_view(data_).substr(offset_);
    std::string where = "block " + std::to_string(blocks_ + 1) + " at byte " + std::to_string(offset_);
    if (rest.size() < recording::kBlockHeaderSize) {
        damage_ = where + " is cut short in its header (the run was stopped while writing it)";
        return false;
    }
    if (!rest.starts_with(recording::kBlockMagic)) {
        damage_ = where + " does not begin as a block does";
        return false;
    }
    std::uint32_t compressed = little_endian_u32(rest.substr(4));
    std::uint32_t size = little_endian_u32(rest.substr(8));
    std::uint32_t crc = little_endian_u32(rest.substr(12));
    if (size > recording::kMaxBlockSize) {
        damage_ = where + " claims " + std::to_string(size) + " bytes, more than a block holds";
        return false;
    }
    if (compressed > rest.size() - recording::kBlockHeaderSize) {
        damage_ = where + " is cut short: " + std::to_string(rest.size() - recording::kBlockHeaderSize) + " of its " +
                  std::to_string(compressed) + " bytes were written";
        return false;
    }
    records.assign(size, '\0');
    uLongf out_size = size;
    int status = uncompress(reinterpret_cast<Bytef*>(records.data()), &out_size,
                            reinterpret_cast<const Bytef*>(rest.data() + recording::kBlockHeaderSize), compressed);
    if (status != Z_OK || out_size != size ||
        crc32(0, reinterpret_cast<const Bytef*>(records.data()), static_cast<uInt>(records.size())) != crc) {
        damage_ = where + " is damaged: its data does not decompress to what its header says";
        return false;
    }
    offset_ += recording::kBlockHeaderSize + compressed;
    return true;
}

void RecordingReader::read_records(const std::string& records, const Visitor& visitor) {
    Decoder in(records);
    while (!in.done()) {
        auto tag = in.byte();
        switch (tag) {
            case recording::kInfo: read_info(in); break;
            case recording::kProcess: {
                RecordedProcess process;
                process.pid = in.signed_varint();
                process.root_label = in.string();
                process.command_line = in.string();
                if (visitor.process) visitor.process(process);
                break;
            }
            case recording::kThread: {
                RecordedThread thread;
                thread.pid = in.signed_varint();
                thread.info.id = in.varint();
                thread.info.name = in.string();
                threads_.push_back(std::move(thread));
                last_stack_.push_back(0);
                break;
            }
            case recording::kFrame: {
                Frame frame;
                frame.function = in.string();
                frame.filename = in.string();
                frame.line = static_cast<int>(in.signed_varint());
                frame.first_line = static_cast<int>(in.signed_varint());
                frame.synthetic = (in.varint() & 1) != 0;
                frame.name = in.string();
                frames_.push_back(std::move(frame));
                break;
            }
            case recording::kStack: {
                auto count = in.varint();
                if (count > kMaxStackFrames) throw Malformed("a stack of " + std::to_string(count) + " frames");
                std::vector<std::uint32_t> frames;
                frames.reserve(count);
                for (std::uint64_t i = 0; i < count; ++i)
                    frames.push_back(checked_index(in.varint(), frames_.size(), "frame"));
                stacks_.push_back(std::move(frames));
                break;
            }
            case recording::kTick: read_tick(in, tag, visitor); break;
            case recording::kEmptyTicks: read_empty_ticks(in, visitor); break;
            case recording::kEnd:
                info_.run.duration_s = in.real();
                info_.run.rate_hz = in.real();
                info_.run.samples = in.varint();
                info_.run.errors = in.varint();
                info_.finished = true;
                break;
            default:
                if (tag < recording::kSmallTick) throw Malformed("an unknown record (tag " + std::to_string(tag) + ")");
                read_tick(in, tag, visitor);
        }
    }
}

void RecordingReader::read_info(Decoder& in) {
    std::map<std::string, std::string> fields;
    auto count = in.varint();
    for (std::uint64_t i = 0; i < count; ++i) {
        std::string key = in.string();
        fields[key] = in.string();
    }
    auto text = [&](const char* key) { return fields.count(key) ? fields[key] : std::string(); };
    auto number = [&](const char* key) -> std::int64_t {
        try {
            return fields.count(key) ? std::stoll(fields[key]) : 0;
        } catch (const std::exception&) {
            throw Malformed(std::string("its ") + key + " is not a number");
        }
    };
    info_.pysample_version = text("pysample_version");
    info_.host = text("host");
    info_.run.pid = static_cast<int>(number("pid"));
    info_.run.command_line = text("command_line");
    info_.run.python_version = text("python_version");
    info_.run.start_time = text("start_time");
    info_.run.start_unix_ns = number("start_unix_ns");
    info_.run.counting = text("counting");
    info_.mode = text("mode");
    info_.gil_read = text("gil_read") == "1";
    info_.subprocesses = text("subprocesses") == "1";
    info_.async_tasks = text("async") == "1";
    std::string rate = text("rate_asked");
    if (rate.size() == 8) info_.rate_asked = Decoder(rate).real();
    info_.run.rate_hz = info_.rate_asked;
}

void RecordingReader::read_tick(Decoder& in, std::uint8_t tag, const Visitor& visitor) {
    last_time_us_ += in.varint();
    std::uint64_t count_and_failed = tag >= recording::kSmallTick ? tag - recording::kSmallTick : in.varint();
    bool failed = (count_and_failed & 1) != 0;
    RecordedSample sample;
    sample.time_us = last_time_us_;
    for (std::uint64_t i = 0; i < count_and_failed >> 1; ++i) {
        auto thread_and_plain = in.varint();
        sample.thread = checked_index(thread_and_plain >> 1, threads_.size(), "thread");
        bool plain = (thread_and_plain & 1) != 0;
        auto stack = plain ? 0 : in.varint();
        if (stack == 0) {
            if (last_stack_[sample.thread] == 0) throw Malformed("a thread's first sample refers to its last stack");
            stack = last_stack_[sample.thread];
        }
        sample.stack = checked_index(stack - 1, stacks_.size(), "stack");
        last_stack_[sample.thread] = static_cast<std::uint32_t>(stack);
        auto weight_and_flags = plain ? std::uint64_t{1} << 2 : in.varint();
        sample.weight = static_cast<std::uint32_t>(std::min<std::uint64_t>(weight_and_flags >> 2, 0xFFFFFFFFU));
        sample.flags = static_cast<std::uint8_t>(weight_and_flags & 3U);
        ++samples_read_;
        if (visitor.sample) visitor.sample(sample);
    }
    ++ticks_;
    if (failed) ++failed_ticks_;
    if (visitor.tick) visitor.tick(last_time_us_, failed);
}

// Ticks without samples, counted at the time of the last of them.
void RecordingReader::read_empty_ticks(Decoder& in, const Visitor& visitor) {
    auto count = in.varint();
    auto failed = in.varint();
    if (failed > count) throw Malformed("more failed ticks than ticks");
    last_time_us_ += in.varint();
    ticks_ += count;
    failed_ticks_ += failed;
    if (!visitor.tick) return;
    for (std::uint64_t i = 0; i < count; ++i) visitor.tick(last_time_us_, i < failed);
}

}  // namespace pysample::exporters
