#include <algorithm>
#include <iomanip>
#include <map>
#include <memory>
#include <sstream>

#include "exporters/exporters.hpp"

namespace pysample::exporters {
namespace {

constexpr double kWidth = 1200;
constexpr double kRowHeight = 17;
constexpr double kTop = 40;
constexpr double kMinWidth = 0.3;  // pixels; narrower frames are not drawn

struct Node {
    std::string label;
    std::string file;
    std::uint64_t count = 0;
    std::map<std::string, std::unique_ptr<Node>> children;
};

std::string escape_xml(const std::string& text) {
    std::string out;
    out.reserve(text.size());
    for (unsigned char c : text) {
        switch (c) {
            case '<': out += "&lt;"; break;
            case '>': out += "&gt;"; break;
            case '&': out += "&amp;"; break;
            case '"': out += "&quot;"; break;
            case '\'': out += "&apos;"; break;
            default:
                if (c < 0x20 && c != '\t') {
                    out += ' ';
                } else {
                    out += static_cast<char>(c);
                }
        }
    }
    return out;
}

// A warm hue chosen from the file name, so the same module keeps its colour across runs.
std::string colour_for(const std::string& file) {
    std::uint32_t h = 2166136261u;
    for (unsigned char c : file) h = (h ^ c) * 16777619u;
    int red = 200 + static_cast<int>(h % 55);
    int green = 80 + static_cast<int>((h >> 8) % 130);
    int blue = static_cast<int>((h >> 16) % 60);
    return "rgb(" + std::to_string(red) + "," + std::to_string(green) + "," + std::to_string(blue) + ")";
}

std::size_t depth_of(const Node& node) {
    std::size_t deepest = 0;
    for (const auto& [label, child] : node.children) deepest = std::max(deepest, depth_of(*child));
    return deepest + 1;
}

void draw(const Node& node, double x, std::size_t depth, std::size_t max_depth, double per_sample, std::uint64_t total,
          std::ostream& out) {
    double width = static_cast<double>(node.count) * per_sample;
    if (width < kMinWidth) return;
    if (depth > 0) {
        double y = kTop + static_cast<double>(max_depth - depth) * kRowHeight;
        double percent = 100.0 * static_cast<double>(node.count) / static_cast<double>(total);
        std::string label = escape_xml(node.label);
        out << "<g><title>" << label << " (" << node.count << " samples, " << std::fixed << std::setprecision(2)
            << percent << "%)</title><rect x=\"" << x << "\" y=\"" << y << "\" width=\"" << width << "\" height=\""
            << (kRowHeight - 1) << "\" fill=\"" << colour_for(node.file) << "\" rx=\"2\"/>";
        std::size_t fits = static_cast<std::size_t>(width / 7);
        if (fits >= 3) {
            std::string text = node.label.size() > fits ? node.label.substr(0, fits - 2) + ".." : node.label;
            out << "<text x=\"" << (x + 3) << "\" y=\"" << (y + 12) << "\">" << escape_xml(text) << "</text>";
        }
        out << "</g>\n";
    }
    for (const auto& [label, child] : node.children) {
        draw(*child, x, depth + 1, max_depth, per_sample, total, out);
        x += static_cast<double>(child->count) * per_sample;
    }
}

}  // namespace

// A static flamegraph: root at the bottom, one rectangle per frame with its share in a tooltip.
void write_flamegraph(const Profile& profile, const WriteOptions& options, std::ostream& out) {
    Node root;
    for (const auto& stack : profile.stacks()) {
        Node* node = &root;
        node->count += stack.count;
        auto descend = [&](const std::string& label, const std::string& file) {
            auto& child = node->children[label];
            if (!child) child = std::make_unique<Node>(Node{label, file, 0, {}});
            node = child.get();
            node->count += stack.count;
        };
        if (options.thread_roots) descend(thread_label(profile.threads()[stack.thread]), "");
        for (FrameId id : stack.frames) {
            const Frame& frame = profile.frame(id);
            descend(frame_label(frame, options.line_numbers), frame.filename);
        }
    }
    std::size_t max_depth = depth_of(root) - 1;
    double height = kTop + static_cast<double>(max_depth + 1) * kRowHeight + 10;
    double per_sample = root.count == 0 ? 0 : kWidth / static_cast<double>(root.count);

    const RunInfo& info = profile.info;
    std::ostringstream title;
    title << "pysample: pid " << info.pid << " " << info.command_line << " (" << info.samples << " samples, "
          << std::fixed << std::setprecision(1) << info.duration_s << " s at " << info.rate_hz << " Hz)";
    out << "<?xml version=\"1.0\" encoding=\"UTF-8\" standalone=\"no\"?>\n"
        << "<svg version=\"1.1\" xmlns=\"http://www.w3.org/2000/svg\" width=\"" << kWidth + 20 << "\" height=\""
        << height << "\" viewBox=\"0 0 " << kWidth + 20 << " " << height << "\">\n"
        << "<style>text{font-family:monospace;font-size:11px;fill:#000;pointer-events:none}</style>\n"
        << "<rect width=\"100%\" height=\"100%\" fill=\"#fdfdf6\"/>\n"
        << "<text x=\"10\" y=\"24\" style=\"font-size:14px\">" << escape_xml(title.str()) << "</text>\n"
        << "<g transform=\"translate(10,0)\">\n";
    draw(root, 0, 0, max_depth, per_sample, std::max<std::uint64_t>(root.count, 1), out);
    out << "</g>\n</svg>\n";
}

}  // namespace pysample::exporters
