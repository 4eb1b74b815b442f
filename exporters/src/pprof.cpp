// pprof's profile.proto (github.com/google/pprof, proto/profile.proto), gzip-compressed: what
// `go tool pprof`, Pyroscope, Parca and Grafana read. Written by hand, field by field: a profile
// needs a dozen fields of a stable schema, not a protobuf library.
//
// Two sample types: the samples, and the time they stand for (CPU or wall-clock nanoseconds, the
// run's interval each). Each Python frame is a location with one line, of a function named by its
// qualified name, with its file and first line. The thread is a pair of labels on every sample,
// "thread_id" (a number) and "thread_name", which `-tagfocus` and `-tagroot` use.

#include <zlib.h>

#include <cmath>
#include <cstdint>
#include <map>
#include <stdexcept>
#include <string>
#include <string_view>
#include <tuple>
#include <unordered_map>
#include <vector>

#include "exporters/exporters.hpp"
#include "exporters/utf8.hpp"

namespace pysample::exporters {
namespace {

// Field numbers of profile.proto.
namespace field {
constexpr int kSampleType = 1, kSample = 2, kMapping = 3, kLocation = 4, kFunction = 5, kStringTable = 6;
constexpr int kTimeNanos = 9, kDurationNanos = 10, kPeriodType = 11, kPeriod = 12, kComment = 13;
constexpr int kDefaultSampleType = 14;
constexpr int kValueTypeType = 1, kValueTypeUnit = 2;
constexpr int kSampleLocationId = 1, kSampleValue = 2, kSampleLabel = 3;
constexpr int kLabelKey = 1, kLabelStr = 2, kLabelNum = 3;
constexpr int kMappingId = 1, kMappingFilename = 5, kMappingHasFunctions = 7, kMappingHasFilenames = 8,
              kMappingHasLineNumbers = 9;
constexpr int kLocationId = 1, kLocationMappingId = 2, kLocationAddress = 3, kLocationLine = 4;
constexpr int kLineFunctionId = 1, kLineLine = 2;
constexpr int kFunctionId = 1, kFunctionName = 2, kFunctionSystemName = 3, kFunctionFilename = 4,
              kFunctionStartLine = 5;
}  // namespace field

constexpr int kVarint = 0;
constexpr int kLengthDelimited = 2;

class ProtoWriter {
public:
    void varint_field(int number, std::uint64_t value) {
        if (value == 0) return;  // proto3: a zero is the default, left out
        tag(number, kVarint);
        varint(value);
    }
    void signed_field(int number, std::int64_t value) { varint_field(number, static_cast<std::uint64_t>(value)); }
    void bool_field(int number, bool value) { varint_field(number, value ? 1 : 0); }
    void bytes_field(int number, std::string_view bytes) {
        tag(number, kLengthDelimited);
        varint(bytes.size());
        bytes_ += bytes;
    }
    void message_field(int number, const ProtoWriter& message) { bytes_field(number, message.bytes_); }
    void packed_field(int number, const std::vector<std::uint64_t>& values) {
        if (values.empty()) return;
        ProtoWriter packed;
        for (auto value : values) packed.varint(value);
        bytes_field(number, packed.bytes_);
    }
    const std::string& bytes() const { return bytes_; }
    void clear() { bytes_.clear(); }

private:
    void tag(int number, int wire_type) { varint((static_cast<std::uint64_t>(number) << 3) | wire_type); }
    void varint(std::uint64_t value) {
        while (value >= 0x80) {
            bytes_ += static_cast<char>((value & 0x7F) | 0x80);
            value >>= 7;
        }
        bytes_ += static_cast<char>(value);
    }
    std::string bytes_;
};

class StringTable {
public:
    StringTable() { index(""); }
    std::int64_t index(const std::string& text) {
        auto [it, added] = indices_.try_emplace(text, static_cast<std::int64_t>(texts_.size()));
        if (added) texts_.push_back(text);
        return it->second;
    }
    const std::vector<std::string>& texts() const { return texts_; }

private:
    std::unordered_map<std::string, std::int64_t> indices_;
    std::vector<std::string> texts_;
};

ProtoWriter value_type(StringTable& strings, const std::string& type, const std::string& unit) {
    ProtoWriter message;
    message.signed_field(field::kValueTypeType, strings.index(type));
    message.signed_field(field::kValueTypeUnit, strings.index(unit));
    return message;
}

// Functions and locations, numbered from 1 in order of first use; frames that differ only in what
// the output leaves out (the line, with --nolineno) share one location.
class Locations {
public:
    Locations(const Profile& profile, bool line_numbers, StringTable& strings)
        : profile_(profile), line_numbers_(line_numbers), strings_(strings), by_frame_(profile.frames().size(), 0) {}

    std::uint64_t of_frame(FrameId id) {
        if (by_frame_[id] != 0) return by_frame_[id];
        const Frame& frame = profile_.frame(id);
        std::uint64_t function = function_of(frame);
        std::int64_t line = line_numbers_ && frame.line > 0 ? frame.line : 0;
        auto [it, added] = locations_.try_emplace({function, line}, locations_.size() + 1);
        if (added) {
            ProtoWriter line_message;
            line_message.varint_field(field::kLineFunctionId, function);
            line_message.signed_field(field::kLineLine, line);
            ProtoWriter location;
            location.varint_field(field::kLocationId, it->second);
            location.varint_field(field::kLocationMappingId, 1);
            location.varint_field(field::kLocationAddress, it->second);  // unique, as pprof's tools expect
            location.message_field(field::kLocationLine, line_message);
            messages_.push_back(std::move(location));
        }
        return by_frame_[id] = it->second;
    }
    const std::vector<ProtoWriter>& location_messages() const { return messages_; }
    const std::vector<ProtoWriter>& function_messages() const { return function_messages_; }

private:
    std::uint64_t function_of(const Frame& frame) {
        std::string name = valid_utf8(frame.function);
        std::string file = valid_utf8(frame.filename);
        auto key = std::make_tuple(name, file, frame.first_line);
        auto [it, added] = functions_.try_emplace(key, functions_.size() + 1);
        if (added) {
            ProtoWriter function;
            function.varint_field(field::kFunctionId, it->second);
            function.signed_field(field::kFunctionName, strings_.index(name));
            // Left out when it is the name: pprof reads a function whose system name is its name as
            // not yet demangled, and would cut "<module>" and "<lambda>" as C++ template arguments.
            std::string system_name = valid_utf8(frame.plain_name());
            if (system_name != name) function.signed_field(field::kFunctionSystemName, strings_.index(system_name));
            function.signed_field(field::kFunctionFilename, strings_.index(file));
            function.signed_field(field::kFunctionStartLine, frame.first_line);
            function_messages_.push_back(std::move(function));
        }
        return it->second;
    }

    const Profile& profile_;
    bool line_numbers_;
    StringTable& strings_;
    std::vector<std::uint64_t> by_frame_;  // 0 until the frame's location is made
    std::map<std::tuple<std::string, std::string, int>, std::uint64_t> functions_;
    std::map<std::pair<std::uint64_t, std::int64_t>, std::uint64_t> locations_;
    std::vector<ProtoWriter> messages_;
    std::vector<ProtoWriter> function_messages_;
};

ProtoWriter thread_label(StringTable& strings, std::string_view key, const ThreadInfo& thread, bool by_name) {
    ProtoWriter label;
    label.signed_field(field::kLabelKey, strings.index(std::string(key)));
    if (by_name) {
        label.signed_field(field::kLabelStr, strings.index(valid_utf8(thread.name)));
    } else {
        label.signed_field(field::kLabelNum, static_cast<std::int64_t>(thread.id));
    }
    return label;
}

std::string gzip(const std::string& bytes) {
    z_stream stream{};
    if (deflateInit2(&stream, Z_BEST_SPEED, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK) {
        throw std::runtime_error("pprof: zlib could not start a gzip stream");
    }
    std::string out(deflateBound(&stream, static_cast<uLong>(bytes.size())) + 32, '\0');
    stream.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(bytes.data()));
    stream.avail_in = static_cast<uInt>(bytes.size());
    stream.next_out = reinterpret_cast<Bytef*>(out.data());
    stream.avail_out = static_cast<uInt>(out.size());
    int status = deflate(&stream, Z_FINISH);
    out.resize(stream.total_out);
    deflateEnd(&stream);
    if (status != Z_STREAM_END) throw std::runtime_error("pprof: zlib could not compress the profile");
    return out;
}

}  // namespace

void write_pprof(const Profile& profile, const WriteOptions& options, std::ostream& out) {
    const RunInfo& info = profile.info;
    StringTable strings;
    ProtoWriter top;
    std::string time_type = info.counting == "CPU time" ? "cpu" : "wall";
    top.message_field(field::kSampleType, value_type(strings, "samples", "count"));
    top.message_field(field::kSampleType, value_type(strings, time_type, "nanoseconds"));
    auto period = static_cast<std::int64_t>(std::llround(info.interval_s() * 1e9));

    Locations locations(profile, options.line_numbers, strings);
    std::vector<std::uint64_t> ids;
    for (const StackCount& stack : profile.stacks()) {
        if (stack.count == 0 || stack.frames.empty()) continue;
        ids.clear();
        for (auto it = stack.frames.rbegin(); it != stack.frames.rend(); ++it) ids.push_back(locations.of_frame(*it));
        ProtoWriter sample;
        sample.packed_field(field::kSampleLocationId, ids);
        sample.packed_field(field::kSampleValue,
                            {stack.count, stack.count * static_cast<std::uint64_t>(std::max<std::int64_t>(period, 0))});
        const ThreadInfo& thread = profile.threads()[stack.thread];
        sample.message_field(field::kSampleLabel, thread_label(strings, "thread_id", thread, false));
        if (!thread.name.empty()) {
            sample.message_field(field::kSampleLabel, thread_label(strings, "thread_name", thread, true));
        }
        top.message_field(field::kSample, sample);
    }

    ProtoWriter mapping;
    mapping.varint_field(field::kMappingId, 1);
    mapping.signed_field(field::kMappingFilename,
                         strings.index(info.python_version.empty() ? "python" : "python " + info.python_version));
    mapping.bool_field(field::kMappingHasFunctions, true);
    mapping.bool_field(field::kMappingHasFilenames, true);
    mapping.bool_field(field::kMappingHasLineNumbers, options.line_numbers);
    top.message_field(field::kMapping, mapping);
    for (const auto& location : locations.location_messages()) top.message_field(field::kLocation, location);
    for (const auto& function : locations.function_messages()) top.message_field(field::kFunction, function);

    top.signed_field(field::kTimeNanos, info.start_unix_ns);
    top.signed_field(field::kDurationNanos, static_cast<std::int64_t>(std::llround(info.duration_s * 1e9)));
    top.message_field(field::kPeriodType, value_type(strings, time_type, "nanoseconds"));
    top.signed_field(field::kPeriod, period);
    std::string comment = "pysample " + options.version;
    if (info.pid != 0) comment += ", pid " + std::to_string(info.pid);
    if (!info.command_line.empty()) comment += ": " + valid_utf8(info.command_line);
    top.signed_field(field::kComment, strings.index(comment));
    top.signed_field(field::kDefaultSampleType, strings.index(time_type));
    // The string table last: every index above is known by now.
    for (const auto& text : strings.texts()) top.bytes_field(field::kStringTable, text);
    out << gzip(top.bytes());
}

}  // namespace pysample::exporters
