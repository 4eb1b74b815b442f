#include "commands/logging.hpp"

#include <spdlog/pattern_formatter.h>

#include "exporters/utf8.hpp"

namespace pysample::sampler {
namespace {

// The message with control characters spelled out: a path with a newline or an escape sequence
// in it can neither split a log line nor drive the terminal.
class EscapedMessage final : public spdlog::custom_flag_formatter {
public:
    void format(const spdlog::details::log_msg& message, const std::tm&, spdlog::memory_buf_t& dest) override {
        auto escaped =
            exporters::escape_control_characters(std::string_view(message.payload.data(), message.payload.size()));
        dest.append(escaped.data(), escaped.data() + escaped.size());
    }
    std::unique_ptr<custom_flag_formatter> clone() const override { return std::make_unique<EscapedMessage>(); }
};

}  // namespace

std::unique_ptr<spdlog::formatter> log_formatter() {
    auto formatter = std::make_unique<spdlog::pattern_formatter>();
    formatter->add_flag<EscapedMessage>('*').set_pattern("pysample: [%l] %*");
    return formatter;
}

}  // namespace pysample::sampler
