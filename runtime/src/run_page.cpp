// run_page: see run_page.hpp. Each step's elements carry data-step="NAME"
// and data-status="STATUS" (tests read them from the page's DOM).
#include "run_page.hpp"

#include <algorithm>
#include <chrono>
#include <ctime>
#include <map>

#include <fmt/chrono.h>
#include <fmt/format.h>

#include "metric_plot.hpp"

namespace penstock::detail::r1 {

namespace {

// Graphs above this many steps are listed, not drawn (the table has them all).
constexpr std::size_t most_drawn = 2000;

const char* colour(std::string_view status) {
  if (status == "ran") return "#4caf50";
  if (status == "cached") return "#90caf9";
  if (status == "failed") return "#e53935";
  if (status == "skipped") return "#bdbdbd";
  return "#ffb74d";  // cancelled
}

std::string seconds_text(std::chrono::nanoseconds d) {
  return fmt::format("{:.3f} s", std::chrono::duration<double>(d).count());
}

std::string local(sys_time t) {
  const std::time_t s = std::chrono::system_clock::to_time_t(t);
  std::tm tm{};
  ::localtime_r(&s, &tm);
  return fmt::format("{:%Y-%m-%d %H:%M:%S}", tm);
}

// `name` in at most `most` characters (UTF-8: never half of one), "…" ending a cut one.
std::string shortened(const std::string& name, std::size_t most) {
  std::size_t chars = 0;
  for (std::size_t i = 0; i < name.size(); ++i) {
    if ((static_cast<unsigned char>(name[i]) & 0xc0) == 0x80) continue;  // inside a character
    if (++chars == most) return name.substr(0, i) + "…";
  }
  return name;
}

// Steps in columns by depth (the longest path from a step without inputs).
std::string graph_svg(const run_page_data& d) {
  const std::size_t n = d.steps.size();
  std::vector<std::size_t> depth(n, 0);
  std::vector<std::vector<std::uint32_t>> producers(n);
  for (const auto& in : d.inputs)
    if (in.node < n && in.producer < n) producers[in.node].push_back(in.producer);
  for (std::size_t i = 0; i < n; ++i)  // topological order: producers come first
    for (const auto p : producers[i]) depth[i] = std::max(depth[i], depth[p] + 1);
  std::map<std::size_t, std::vector<std::size_t>> columns;
  for (std::size_t i = 0; i < n; ++i) columns[depth[i]].push_back(i);
  constexpr double box_w = 150, box_h = 34, gap_x = 60, gap_y = 16, margin = 10;
  std::vector<std::pair<double, double>> at(n);
  std::size_t tallest = 0;
  for (const auto& [c, nodes] : columns) {
    tallest = std::max(tallest, nodes.size());
    for (std::size_t r = 0; r < nodes.size(); ++r)
      at[nodes[r]] = {margin + static_cast<double>(c) * (box_w + gap_x),
                      margin + static_cast<double>(r) * (box_h + gap_y)};
  }
  const double width = margin * 2 + static_cast<double>(columns.size()) * (box_w + gap_x) - gap_x;
  const double height = margin * 2 + static_cast<double>(tallest) * (box_h + gap_y) - gap_y;
  std::string svg = fmt::format(
      "<svg xmlns=\"http://www.w3.org/2000/svg\" class=\"graph\" width=\"{0:.0f}\" height=\"{1:.0f}\" "
      "viewBox=\"0 0 {0:.0f} {1:.0f}\" font-family=\"sans-serif\" font-size=\"12\">\n",
      std::max(width, 200.0), std::max(height, 50.0));
  for (std::size_t i = 0; i < n; ++i) {
    for (const auto p : producers[i]) {
      svg += fmt::format("<line x1=\"{:.1f}\" y1=\"{:.1f}\" x2=\"{:.1f}\" y2=\"{:.1f}\" stroke=\"#888\"/>\n",
                         at[p].first + box_w, at[p].second + box_h / 2, at[i].first, at[i].second + box_h / 2);
    }
  }
  for (std::size_t i = 0; i < n; ++i) {
    const auto& s = d.steps[i];
    const std::string name = xml_escape(s.name);
    svg += fmt::format(
        "<g class=\"step\" data-step=\"{0}\" data-status=\"{1}\"><title>{0}: {1}</title>"
        "<rect x=\"{2:.1f}\" y=\"{3:.1f}\" width=\"{4}\" height=\"{5}\" rx=\"6\" fill=\"{6}\" stroke=\"#333\"/>"
        "<text x=\"{7:.1f}\" y=\"{8:.1f}\" text-anchor=\"middle\">{9}</text></g>\n",
        name, s.status, at[i].first, at[i].second, box_w, box_h, colour(s.status), at[i].first + box_w / 2,
        at[i].second + box_h / 2 + 4, xml_escape(shortened(s.name, 20)));
  }
  return svg + "</svg>\n";
}

// Each computed step as a bar on its worker's lane.
std::string timeline_svg(const run_page_data& d) {
  // Bars end at most at the latest end (saturated: a damaged record may
  // hold any numbers), on at most 256 lanes.
  constexpr int most_lanes = 256;
  const auto ends = [](const step_run_row& s) {
    const auto most = std::chrono::nanoseconds::max();
    return s.duration > most - s.started ? most : s.started + s.duration;
  };
  std::chrono::nanoseconds end{1};
  int workers = 0;
  for (const auto& s : d.steps) {
    if (s.worker < 0 || s.worker >= most_lanes) continue;
    end = std::max(end, ends(s));
    workers = std::max(workers, s.worker + 1);
  }
  if (workers == 0) return "<p>No step computed in this run (every step came from the cache or did not run).</p>\n";
  constexpr double left = 80, lane = 26, width = 900;
  const double height = lane * workers + 30;
  const auto x = [&](std::chrono::nanoseconds t) {
    return left + static_cast<double>(t.count()) / static_cast<double>(end.count()) * (width - left - 10);
  };
  std::string svg = fmt::format(
      "<svg xmlns=\"http://www.w3.org/2000/svg\" class=\"timeline\" width=\"{0:.0f}\" height=\"{1:.0f}\" "
      "viewBox=\"0 0 {0:.0f} {1:.0f}\" font-family=\"sans-serif\" font-size=\"12\">\n",
      width, height);
  for (int w = 0; w < workers; ++w)
    svg += fmt::format("<text x=\"4\" y=\"{:.1f}\">worker {}</text>\n", lane * w + 17, w);
  for (const auto& s : d.steps) {
    if (s.worker < 0 || s.worker >= most_lanes) continue;
    svg += fmt::format(
        "<rect class=\"bar\" data-step=\"{0}\" x=\"{1:.2f}\" y=\"{2:.1f}\" width=\"{3:.2f}\" height=\"{4:.1f}\" "
        "fill=\"{5}\"><title>{0}: {6} from {7}</title></rect>\n",
        xml_escape(s.name), x(s.started), lane * s.worker + 4, std::max(1.0, x(ends(s)) - x(s.started)), lane - 8,
        colour(s.status), seconds_text(s.duration), seconds_text(s.started));
  }
  svg += fmt::format(
      "<text x=\"{:.0f}\" y=\"{:.0f}\">0 s</text><text x=\"{:.0f}\" y=\"{:.0f}\" text-anchor=\"end\">{}</text>\n", left,
      height - 6, width - 10, height - 6, seconds_text(end));
  return svg + "</svg>\n";
}

}  // namespace

std::string run_page(const run_page_data& d) {
  const run_row& r = d.run;
  std::string html = fmt::format(
      "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
      "<title>run {0} of {1}</title>\n<style>\n"
      "body {{ font-family: sans-serif; margin: 24px; color: #222; }}\n"
      "table {{ border-collapse: collapse; margin: 8px 0 16px; }}\n"
      "td, th {{ border: 1px solid #ccc; padding: 3px 8px; text-align: left; font-size: 13px; }}\n"
      "th {{ background: #f3f3f3; }}\n h2 {{ margin-top: 28px; }}\n"
      ".status {{ display: inline-block; padding: 1px 8px; border-radius: 8px; }}\n"
      ".scroll {{ overflow: auto; max-width: 100%; }}\n"
      "</style></head><body>\n"
      "<h1>{1}: run {0}</h1>\n<table class=\"run\">"
      "<tr><th>status</th><td id=\"run-status\">{2}</td></tr>"
      "<tr><th>experiment</th><td>{3}</td></tr><tr><th>started</th><td>{4}</td></tr>"
      "<tr><th>duration</th><td>{5}</td></tr><tr><th>steps</th><td>{6} ({7} ran, {8} cached, {9} failed)</td></tr>"
      "<tr><th>host</th><td>{10}, user {11}</td></tr><tr><th>git</th><td>{12}</td></tr>"
      "<tr><th>penstock</th><td>{13}</td></tr></table>\n",
      xml_escape(r.id), xml_escape(r.pipeline), xml_escape(r.status), xml_escape(r.experiment), local(r.started),
      r.ended ? seconds_text(std::chrono::duration_cast<std::chrono::nanoseconds>(*r.ended - r.started)) : "-", r.steps,
      r.computed, r.cached, r.failed, xml_escape(r.host), xml_escape(r.user),
      r.git_commit.empty() ? "-"
                           : xml_escape(r.git_commit) + (r.git_dirty.value_or(false) ? " (uncommitted changes)" : ""),
      xml_escape(r.version));
  html += "<h2>Parameters</h2>\n";
  if (d.params.empty()) {
    html += "<p>None.</p>\n";
  } else {
    html += "<table class=\"params\"><tr><th>name</th><th>value</th></tr>";
    for (const auto& [name, value] : d.params)
      html += fmt::format("<tr><td>{}</td><td>{}</td></tr>", xml_escape(name), xml_escape(value));
    html += "</table>\n";
  }
  html += "<h2>Graph</h2>\n";
  if (d.steps.empty()) {
    html += "<p>The run did not record its steps (it did not finish).</p>\n";
  } else if (d.steps.size() > most_drawn) {
    html += fmt::format("<p>{} steps: too many to draw; the table below lists them.</p>\n", d.steps.size());
  } else {
    html += "<div class=\"scroll\">" + graph_svg(d) + "</div>\n";
    html += "<p>";
    for (const char* s : {"ran", "cached", "failed", "skipped", "cancelled"})
      html += fmt::format("<span class=\"status\" style=\"background:{}\">{}</span> ", colour(s), s);
    html += "</p>\n";
  }
  html += "<h2>Timeline</h2>\n<div class=\"scroll\">" + timeline_svg(d) + "</div>\n";
  html += "<h2>Metrics</h2>\n";
  std::map<std::string, plot_series> by_name;
  for (const auto& m : d.metrics) {
    auto& s = by_name[m.name];
    s.label = r.id;
    s.points.emplace_back(static_cast<double>(m.step_number), m.value);
  }
  if (by_name.empty()) html += "<p>None logged.</p>\n";
  // A metric logged once is a value; one logged at several steps, a plot.
  std::string values;
  for (const auto& [name, series] : by_name) {
    if (series.points.size() != 1) continue;
    values += fmt::format("<tr data-metric=\"{0}\"><td>{0}</td><td>{1:.6g}</td></tr>", xml_escape(name),
                          series.points.front().second);
  }
  if (!values.empty()) html += "<table class=\"values\"><tr><th>metric</th><th>value</th></tr>" + values + "</table>\n";
  for (const auto& [name, series] : by_name) {
    if (series.points.size() == 1) continue;
    html += "<div class=\"metric\" data-metric=\"" + xml_escape(name) + "\">" + metric_svg(name, {series}) + "</div>\n";
  }
  html +=
      "<h2>Steps</h2>\n<table class=\"steps\"><tr><th>step</th><th>status</th><th>attempts</th><th>started</th>"
      "<th>duration</th><th>worker</th><th>output</th><th>error</th></tr>\n";
  for (const auto& s : d.steps) {
    const bool timed = s.worker >= 0;
    html += fmt::format(
        "<tr data-step=\"{0}\" data-status=\"{1}\"><td>{0}</td><td><span class=\"status\" style=\"background:{2}\">{1}"
        "</span></td><td>{3}</td><td>{4}</td><td>{5}</td><td>{6}</td><td>{7}</td><td>{8}</td></tr>\n",
        xml_escape(s.name), s.status, colour(s.status), s.attempts, timed ? seconds_text(s.started) : "-",
        timed ? seconds_text(s.duration) : "-", timed ? std::to_string(s.worker) : "-",
        s.output ? s.output->hex().substr(0, 12) : "-", xml_escape(s.error));
  }
  html += "</table>\n</body></html>\n";
  return html;
}

}  // namespace penstock::detail::r1
