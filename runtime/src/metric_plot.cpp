// metric_plot: see metric_plot.hpp. Ticks are "nice" numbers (1, 2 or 5
// times a power of ten) covering the data's range.
#include "metric_plot.hpp"

#include <algorithm>
#include <cmath>
#include <limits>

#include <fmt/format.h>

namespace penstock::detail::r1 {

namespace {

constexpr const char* palette[] = {"#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd",
                                   "#8c564b", "#e377c2", "#17becf", "#7f7f7f", "#bcbd22"};

struct range {
  double low = std::numeric_limits<double>::infinity();
  double high = -std::numeric_limits<double>::infinity();
  void add(double v) {
    low = std::min(low, v);
    high = std::max(high, v);
  }
  // Never empty: a single value gets room around it.
  void widen() {
    if (!std::isfinite(low) || !std::isfinite(high)) low = 0, high = 1;
    if (high - low <= 0) {
      const double pad = std::abs(low) > 1e-300 ? std::abs(low) * 0.05 : 0.5;
      low -= pad;
      high += pad;
    }
    // A range too wide for a double (-1e308 .. 1e308), or too narrow to
    // divide by: the picture is drawn on a plain one instead of NaNs.
    if (!std::isfinite(high - low) || !(high - low > 0)) low = 0, high = 1;
  }
};

// About `count` tick values at a 1-2-5 spacing covering [low, high]
// (whole numbers only, for step numbers, when `whole`).
std::vector<double> ticks(double low, double high, int count, bool whole = false) {
  const double raw = (high - low) / count;
  const double power = std::pow(10.0, std::floor(std::log10(raw)));
  double step = power;
  for (const double m : {1.0, 2.0, 5.0, 10.0}) {
    step = m * power;
    if (step >= raw) break;
  }
  if (whole) step = std::max(step, 1.0);
  std::vector<double> out;
  for (double t = std::ceil(low / step) * step; t <= high + step * 1e-9; t += step) {
    out.push_back(std::abs(t) < step * 1e-9 ? 0.0 : t);
    if (out.size() > 50) break;
  }
  return out;
}

std::string number(double v) { return fmt::format("{:.4g}", v); }

}  // namespace

std::string xml_escape(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (const char c : text) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      case '\'': out += "&apos;"; break;
      default:
        // XML 1.0 has no C0 controls but tab, newline and carriage return.
        if (static_cast<unsigned char>(c) < 0x20 && c != '\t' && c != '\n' && c != '\r') {
          out += fmt::format("\\x{:02x}", static_cast<unsigned char>(c));
        } else {
          out += c;
        }
    }
  }
  return out;
}

std::string metric_svg(std::string_view metric, const std::vector<plot_series>& series, int width, int height) {
  const double left = 70, right = 20, top = 36, legend_line = 18;
  const double legend = legend_line * static_cast<double>(series.size()) + 12;
  const double bottom = 48 + legend;
  const double plot_w = width - left - right;
  const double plot_h = std::max(60.0, height - top - bottom);
  const double total_h = top + plot_h + bottom;
  range x, y;
  for (const auto& s : series) {
    for (const auto& [px, py] : s.points) {
      if (!std::isfinite(px) || !std::isfinite(py)) continue;
      x.add(px);
      y.add(py);
    }
  }
  x.widen();
  y.widen();
  const auto to_x = [&](double v) { return left + (v - x.low) / (x.high - x.low) * plot_w; };
  const auto to_y = [&](double v) { return top + plot_h - (v - y.low) / (y.high - y.low) * plot_h; };

  std::string svg = fmt::format(
      "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{0}\" height=\"{1}\" viewBox=\"0 0 {0} {1}\" "
      "font-family=\"sans-serif\" font-size=\"12\" class=\"metric-plot\" data-metric=\"{2}\">\n"
      "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n"
      "<text x=\"{3}\" y=\"20\" font-size=\"14\" font-weight=\"bold\">{2}</text>\n",
      width, static_cast<int>(total_h), xml_escape(metric), left);
  // Grid, ticks and their labels.
  for (const double t : ticks(x.low, x.high, 8, true)) {
    const double px = to_x(t);
    svg += fmt::format(
        "<line x1=\"{0:.1f}\" y1=\"{1:.1f}\" x2=\"{0:.1f}\" y2=\"{2:.1f}\" stroke=\"#e0e0e0\"/>"
        "<text x=\"{0:.1f}\" y=\"{3:.1f}\" text-anchor=\"middle\" class=\"x-tick\">{4}</text>\n",
        px, top, top + plot_h, top + plot_h + 16, number(t));
  }
  for (const double t : ticks(y.low, y.high, 6)) {
    const double py = to_y(t);
    svg += fmt::format(
        "<line x1=\"{0:.1f}\" y1=\"{1:.1f}\" x2=\"{2:.1f}\" y2=\"{1:.1f}\" stroke=\"#e0e0e0\"/>"
        "<text x=\"{3:.1f}\" y=\"{4:.1f}\" text-anchor=\"end\" class=\"y-tick\">{5}</text>\n",
        left, py, left + plot_w, left - 6, py + 4, number(t));
  }
  svg += fmt::format(
      "<rect x=\"{0}\" y=\"{1}\" width=\"{2}\" height=\"{3}\" fill=\"none\" stroke=\"#333\"/>\n"
      "<text x=\"{4:.1f}\" y=\"{5:.1f}\" text-anchor=\"middle\">step</text>\n"
      "<text x=\"16\" y=\"{6:.1f}\" text-anchor=\"middle\" transform=\"rotate(-90 16 {6:.1f})\">{7}</text>\n",
      left, top, plot_w, plot_h, left + plot_w / 2, top + plot_h + 34, top + plot_h / 2, xml_escape(metric));
  // One line per series, then its legend entry.
  for (std::size_t i = 0; i < series.size(); ++i) {
    const char* color = palette[i % std::size(palette)];
    std::string points;
    std::size_t shown = 0, left_out = 0;
    for (const auto& [px, py] : series[i].points) {
      if (!std::isfinite(px) || !std::isfinite(py)) {
        ++left_out;
        continue;
      }
      points += fmt::format("{}{:.1f},{:.1f}", shown == 0 ? "" : " ", to_x(px), to_y(py));
      ++shown;
    }
    const std::string label = xml_escape(series[i].label);
    if (shown > 1) {
      svg += fmt::format(
          "<polyline class=\"series\" data-label=\"{0}\" fill=\"none\" stroke=\"{1}\" stroke-width=\"2\" "
          "points=\"{2}\"/>\n",
          label, color, points);
    } else if (shown == 1) {
      const auto comma = points.find(',');
      svg += fmt::format("<circle class=\"series\" data-label=\"{0}\" cx=\"{1}\" cy=\"{2}\" r=\"4\" fill=\"{3}\"/>\n",
                         label, points.substr(0, comma), points.substr(comma + 1), color);
    }
    const double ly = top + plot_h + 52 + legend_line * static_cast<double>(i);
    svg += fmt::format(
        "<rect x=\"{0}\" y=\"{1:.1f}\" width=\"14\" height=\"4\" fill=\"{2}\"/>"
        "<text x=\"{3}\" y=\"{4:.1f}\" class=\"legend\">{5}{6}</text>\n",
        left, ly - 4, color, left + 20, ly, label,
        left_out == 0 ? "" : fmt::format(" ({} not finite, not drawn)", left_out));
  }
  svg += "</svg>\n";
  return svg;
}

}  // namespace penstock::detail::r1
