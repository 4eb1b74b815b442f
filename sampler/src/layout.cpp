#include "layout.hpp"

namespace pysample::sampler {

namespace {

constexpr PythonLayout kLayouts[] = {
#include "layouts_generated.inc"
};

}  // namespace

std::optional<PythonLayout> find_layout(int major, int minor) {
    for (const PythonLayout& layout : kLayouts) {
        if (layout.major == major && layout.minor == minor) {
            return layout;
        }
    }
    return std::nullopt;
}

}  // namespace pysample::sampler
