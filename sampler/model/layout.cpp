#include "model/layout.hpp"

namespace pysample::sampler {

namespace {

constexpr PythonLayout kLayouts[] = {
#include "model/layouts_generated.inc"
};

}  // namespace

std::span<const PythonLayout> all_layouts() { return kLayouts; }

std::optional<PythonLayout> find_layout(int major, int minor) {
    for (const PythonLayout& layout : kLayouts) {
        if (layout.major == major && layout.minor == minor) {
            return layout;
        }
    }
    return std::nullopt;
}

}  // namespace pysample::sampler
