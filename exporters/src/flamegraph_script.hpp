#pragma once

#include <string_view>

namespace pysample::exporters {

// The stylesheet and the script embedded in every flamegraph SVG. The script reads everything it
// needs from the document (each frame's <title>, <rect> and data-o attribute), so no string from
// the profiled program ever becomes script code.
std::string_view flamegraph_style();
std::string_view flamegraph_script();

}  // namespace pysample::exporters
