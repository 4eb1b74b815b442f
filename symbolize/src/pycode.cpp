#include "symbolize/pycode.hpp"

#include <atomic>
#include <cstring>
#include <string_view>

#include "attach/memory.hpp"

namespace pysample::symbolize {
namespace {

constexpr std::uint64_t kObTypeOffset = 8;

// Unique across every cache of the run (one per sampled process).
std::uint32_t next_code_id() {
    static std::atomic<std::uint32_t> next{1};
    return next.fetch_add(1, std::memory_order_relaxed);
}
constexpr std::size_t kMaxLineTable = 1 << 20;

// Longer names and file names are cut there and marked "…[truncated, N characters]" (N bytes on Python 2).
constexpr std::size_t kMaxNameChars = 4096;

bool is_surrogate(std::uint32_t cp) { return cp >= 0xD800 && cp <= 0xDFFF; }

// The length of the well-formed UTF-8 sequence `text` starts with; 0 for a stray continuation
// byte, an overlong form, a surrogate, a value past U+10FFFF or a sequence cut short.
std::size_t utf8_sequence_length(std::string_view text) {
    auto byte = [&](std::size_t i) { return static_cast<unsigned char>(text[i]); };
    if (byte(0) < 0x80) return 1;
    std::size_t length = byte(0) >= 0xF8 ? 0 : byte(0) >= 0xF0 ? 4 : byte(0) >= 0xE0 ? 3 : byte(0) >= 0xC0 ? 2 : 0;
    if (length == 0 || length > text.size()) return 0;
    std::uint32_t cp = byte(0) & (0x7Fu >> length);
    for (std::size_t i = 1; i < length; ++i) {
        if ((byte(i) & 0xC0) != 0x80) return 0;
        cp = (cp << 6) | (byte(i) & 0x3Fu);
    }
    constexpr std::uint32_t kSmallest[] = {0, 0, 0x80, 0x800, 0x10000};
    return cp < kSmallest[length] || is_surrogate(cp) || cp > 0x10FFFF ? 0 : length;
}

}  // namespace

// A lone surrogate (a str such as "\udcff", or one decoded with surrogateescape) has no UTF-8 form.
void append_utf8(std::string& out, std::uint32_t cp) {
    if (is_surrogate(cp)) cp = 0xFFFD;
    if (cp < 0x80) {
        out += static_cast<char>(cp);
    } else if (cp < 0x800) {
        out += static_cast<char>(0xC0 | (cp >> 6));
        out += static_cast<char>(0x80 | (cp & 0x3F));
    } else if (cp < 0x10000) {
        out += static_cast<char>(0xE0 | (cp >> 12));
        out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
        out += static_cast<char>(0x80 | (cp & 0x3F));
    } else if (cp < 0x110000) {
        out += static_cast<char>(0xF0 | (cp >> 18));
        out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
        out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
        out += static_cast<char>(0x80 | (cp & 0x3F));
    } else {
        out += "\xEF\xBF\xBD";
    }
}

namespace {

std::optional<std::vector<std::uint8_t>> read_bytes_object(attach::Memory& memory, const CodeObjectLayout& layout,
                                                           std::uint64_t address) {
    std::int64_t size = 0;
    if (address == 0 || !memory.read_value(address + static_cast<std::uint64_t>(layout.bytes_size), size) || size < 0 ||
        static_cast<std::size_t>(size) > kMaxLineTable) {
        return std::nullopt;
    }
    std::vector<std::uint8_t> bytes(static_cast<std::size_t>(size));
    if (!memory.read(address + static_cast<std::uint64_t>(layout.bytes_data), bytes.data(), bytes.size())) {
        return std::nullopt;
    }
    return bytes;
}

}  // namespace

int CodeInfo::line_at(std::int64_t byte_offset) const {
    if (byte_offset == last_offset) return last_line;
    auto it = lines.find(byte_offset);
    int line =
        it != lines.end() ? it->second : line_for_offset(format, linetable, firstlineno, byte_offset, signed_lnotab);
    if (it == lines.end() && lines.size() < 4096) lines.emplace(byte_offset, line);
    last_offset = byte_offset;
    last_line = line;
    return line;
}

// The state bit-field of PyASCIIObject: interned (2 bits), kind (3), compact (1), ascii (1). A
// compact string's characters follow its header; any other keeps a pointer to them.
std::optional<UnicodePrefix> read_unicode_prefix(attach::Memory& memory, const CodeObjectLayout& layout,
                                                 std::uint64_t address, std::size_t max_chars) {
    if (address == 0) return std::nullopt;
    std::int64_t length = 0;
    std::uint32_t state = 0;
    if (!memory.read_value(address + static_cast<std::uint64_t>(layout.unicode_length), length) ||
        !memory.read_value(address + static_cast<std::uint64_t>(layout.unicode_state), state)) {
        return std::nullopt;
    }
    unsigned kind = (state >> 2) & 7;
    bool compact = (state >> 5) & 1;
    bool ascii = (state >> 6) & 1;
    if (length < 0 || (kind != 1 && kind != 2 && kind != 4)) return std::nullopt;
    std::uint64_t data = 0;
    if (compact) {
        data = address + static_cast<std::uint64_t>(ascii ? layout.unicode_ascii_data : layout.unicode_compact_data);
    } else if (layout.unicode_legacy_data < 0 ||
               !memory.read_value(address + static_cast<std::uint64_t>(layout.unicode_legacy_data), data) ||
               data == 0) {
        return std::nullopt;
    }
    std::size_t chars = std::min(static_cast<std::size_t>(length), max_chars);
    std::vector<std::uint8_t> raw(chars * kind);
    if (!memory.read(data, raw.data(), raw.size())) return std::nullopt;
    UnicodePrefix prefix;
    prefix.length = static_cast<std::uint64_t>(length);
    prefix.code_points.resize(chars);
    for (std::size_t i = 0; i < chars; ++i) std::memcpy(&prefix.code_points[i], raw.data() + i * kind, kind);
    return prefix;
}

std::optional<std::string> read_unicode(attach::Memory& memory, const CodeObjectLayout& layout, std::uint64_t address,
                                        std::size_t max_chars) {
    auto prefix = read_unicode_prefix(memory, layout, address, max_chars);
    if (!prefix) return std::nullopt;
    std::string out;
    out.reserve(prefix->code_points.size());
    for (std::uint32_t cp : prefix->code_points) append_utf8(out, cp);
    return out;
}

std::string utf8_from_bytes(std::string_view bytes) {
    std::string out;
    out.reserve(bytes.size());
    for (std::size_t at = 0; at < bytes.size();) {
        std::size_t length = utf8_sequence_length(bytes.substr(at));
        if (length == 0) {
            append_utf8(out, 0xFFFD);
            ++at;
            continue;
        }
        out.append(bytes.substr(at, length));
        at += length;
    }
    return out;
}

namespace {

// The first `max_bytes` bytes of a Python 2 str, and its whole size.
struct BytePrefix {
    std::string bytes;
    std::uint64_t size = 0;
};

std::optional<BytePrefix> read_byte_prefix(attach::Memory& memory, const CodeObjectLayout& layout,
                                           std::uint64_t address, std::size_t max_bytes) {
    std::int64_t size = 0;
    if (address == 0 || !memory.read_value(address + static_cast<std::uint64_t>(layout.bytes_size), size) || size < 0 ||
        size > (std::int64_t{1} << 30)) {
        return std::nullopt;
    }
    BytePrefix prefix{std::string(std::min(static_cast<std::size_t>(size), max_bytes), '\0'),
                      static_cast<std::uint64_t>(size)};
    if (!memory.read(address + static_cast<std::uint64_t>(layout.bytes_data), prefix.bytes.data(),
                     prefix.bytes.size())) {
        return std::nullopt;
    }
    return prefix;
}

std::string truncation_marker(std::uint64_t length, const char* unit) {
    return "\xE2\x80\xA6[truncated, " + std::to_string(length) + " " + unit + "]";
}

// A code object's name or file name as UTF-8, cut at kMaxNameChars.
std::optional<std::string> read_code_string(attach::Memory& memory, const CodeObjectLayout& layout,
                                            std::uint64_t address) {
    if (layout.strings == StringKind::Bytes) {
        auto prefix = read_byte_prefix(memory, layout, address, kMaxNameChars);
        if (!prefix) return std::nullopt;
        std::string text = utf8_from_bytes(prefix->bytes);
        if (prefix->size > kMaxNameChars) text += truncation_marker(prefix->size, "bytes");
        return text;
    }
    auto prefix = read_unicode_prefix(memory, layout, address, kMaxNameChars);
    if (!prefix) return std::nullopt;
    std::string text;
    text.reserve(prefix->code_points.size());
    for (std::uint32_t cp : prefix->code_points) append_utf8(text, cp);
    if (prefix->length > kMaxNameChars) text += truncation_marker(prefix->length, "characters");
    return text;
}

}  // namespace

std::optional<std::string> read_byte_string(attach::Memory& memory, const CodeObjectLayout& layout,
                                            std::uint64_t address, std::size_t max_chars) {
    auto prefix = read_byte_prefix(memory, layout, address, max_chars);
    if (!prefix) return std::nullopt;
    return utf8_from_bytes(prefix->bytes);
}

CodeCache::CodeCache(attach::Memory& memory, CodeObjectLayout layout, std::uint64_t code_type_address,
                     std::size_t max_entries)
    : memory_(memory), layout_(layout), code_type_address_(code_type_address), max_entries_(max_entries) {}

bool CodeCache::is_code_object(std::uint64_t address) {
    std::uint64_t type = 0;
    return address != 0 && memory_.read_value(address + kObTypeOffset, type) &&
           (code_type_address_ == 0 || type == code_type_address_);
}

std::uint64_t CodeCache::fingerprint_of() const {
    std::int64_t name_field = layout_.qualname >= 0 ? layout_.qualname : layout_.name;
    std::uint64_t h = attach::field_at<std::uint64_t>(raw_, name_field);
    h = h * 0x9E3779B97F4A7C15ULL ^ attach::field_at<std::uint64_t>(raw_, layout_.filename);
    h = h * 0x9E3779B97F4A7C15ULL ^ attach::field_at<std::uint64_t>(raw_, layout_.linetable);
    return h * 0x9E3779B97F4A7C15ULL ^
           static_cast<std::uint32_t>(attach::field_at<std::int32_t>(raw_, layout_.firstlineno));
}

void CodeCache::new_sample() {
    retired_.clear();
    ++sample_;
    now_ = std::chrono::steady_clock::now();
}

const CodeInfo* CodeCache::lookup(std::uint64_t code_address, bool recheck) {
    // The frames of a recursion share their code object: the last one looked up in this sample.
    if (!recheck && sample_ != 0 && last_ != nullptr && last_address_ == code_address &&
        last_->last_sample == sample_) {
        return last_;
    }
    last_ = nullptr;
    if (!recheck && sample_ != 0) {
        if (auto it = entries_.find(code_address); it != entries_.end()) {
            CodeInfo& entry = *it->second;
            if (entry.last_sample + 1 >= sample_ && now_ - entry.checked_at < kTrustFor) {
                entry.last_sample = sample_;
                last_ = &entry;
                last_address_ = code_address;
                return &entry;
            }
        }
    }
    const CodeInfo* info = checked_lookup(code_address);
    if (info != nullptr) {
        auto& entry = const_cast<CodeInfo&>(*info);
        entry.last_sample = sample_;
        entry.checked_at = now_;
        last_ = &entry;
        last_address_ = code_address;
    }
    return info;
}

const CodeInfo* CodeCache::checked_lookup(std::uint64_t code_address) {
    raw_.resize(static_cast<std::size_t>(layout_.size));
    if (code_address == 0 || !memory_.read(code_address, raw_.data(), raw_.size())) return nullptr;
    if (code_type_address_ != 0 && attach::field_at<std::uint64_t>(raw_, kObTypeOffset) != code_type_address_)
        return nullptr;
    std::uint64_t fingerprint = fingerprint_of();
    auto it = entries_.find(code_address);
    if (it != entries_.end() && it->second->fingerprint == fingerprint) return it->second.get();
    auto info = load(fingerprint);
    if (!info) return nullptr;
    info->address = code_address;
    if (it != entries_.end()) {
        retired_.push_back(std::move(it->second));
        it->second = std::move(info);
        return it->second.get();
    }
    if (entries_.size() >= max_entries_) {
        for (auto& [address, entry] : entries_) retired_.push_back(std::move(entry));
        entries_.clear();
    }
    return entries_.emplace(code_address, std::move(info)).first->second.get();
}

// Reads the strings and line table of the code object whose header is in raw_.
std::unique_ptr<CodeInfo> CodeCache::load(std::uint64_t fingerprint) {
    auto info = std::make_unique<CodeInfo>();
    std::int64_t name_field = layout_.qualname >= 0 ? layout_.qualname : layout_.name;
    auto function = read_code_string(memory_, layout_, attach::field_at<std::uint64_t>(raw_, name_field));
    auto filename = read_code_string(memory_, layout_, attach::field_at<std::uint64_t>(raw_, layout_.filename));
    auto table = read_bytes_object(memory_, layout_, attach::field_at<std::uint64_t>(raw_, layout_.linetable));
    if (!function || !filename || !table) return nullptr;
    if (layout_.qualname >= 0) {
        auto name = read_code_string(memory_, layout_, attach::field_at<std::uint64_t>(raw_, layout_.name));
        if (!name) return nullptr;
        if (*name != *function) info->name = std::move(*name);
    }
    info->function = std::move(*function);
    info->filename = std::move(*filename);
    info->linetable = std::move(*table);
    info->firstlineno = attach::field_at<std::int32_t>(raw_, layout_.firstlineno);
    info->firsttraceable =
        layout_.firsttraceable >= 0 ? attach::field_at<std::int32_t>(raw_, layout_.firsttraceable) : 0;
    info->format = layout_.format;
    info->signed_lnotab = layout_.signed_lnotab;
    info->fingerprint = fingerprint;
    info->id = next_code_id();
    if (layout_.format == LineTableFormat::LocationTable311) {
        // A PyVarObject whose size counts 2-byte code units; a size no bytecode has means a torn header.
        constexpr std::int64_t kObSizeOffset = 16;
        constexpr std::int64_t kMaxCodeUnits = std::int64_t{1} << 30;
        auto code_units = attach::field_at<std::int64_t>(raw_, kObSizeOffset);
        if (code_units < 0 || code_units > kMaxCodeUnits) return nullptr;
        info->code_bytes = 2 * code_units;
    }
    return info;
}

}  // namespace pysample::symbolize
