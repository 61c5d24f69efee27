// metric_plot: a metric against its step number as an SVG picture, one line
// per run, with axes, ticks and a legend (`show RUN --plot METRIC`,
// `compare RUN... --plot METRIC`, the HTML page). Plain SVG 1.1 text, no
// scripts, no fonts to fetch. Private to the runtime.
#pragma once

#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace penstock::detail::r1 {

struct plot_series {
  std::string label;                              // the run, in the legend
  std::vector<std::pair<double, double>> points;  // (step number, value), in step order
};

// The picture, `width` × `height` pixels. Values that are not finite are
// left out of the line (and said in the legend); a series with one point is a dot.
[[nodiscard]] std::string metric_svg(std::string_view metric, const std::vector<plot_series>& series, int width = 720,
                                     int height = 420);

// `text` with &, <, >, " and ' as XML entities.
[[nodiscard]] std::string xml_escape(std::string_view text);

}  // namespace penstock::detail::r1
