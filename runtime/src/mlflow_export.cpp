// mlflow_export: see mlflow_export.hpp. The REST calls used, all JSON:
//   GET  experiments/get-by-name   POST experiments/create
//   POST runs/search   runs/create   runs/log-batch   runs/update   runs/set-tag   runs/delete
#include "mlflow_export.hpp"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <map>
#include <set>

#include <fmt/format.h>
#include <boost/beast/core/detail/base64.hpp>
#include <nlohmann/json.hpp>

#include "http_client.hpp"
#include "workspace_store.hpp"

namespace penstock::detail::r1 {

namespace {

using json = nlohmann::json;

constexpr std::size_t max_key = 250;           // MAX_ENTITY_KEY_LENGTH
constexpr std::size_t max_param_value = 6000;  // MAX_PARAM_VAL_LENGTH
constexpr std::size_t max_tag_value = 8000;    // MAX_TAG_VAL_LENGTH

// Bytes that are not UTF-8 become U+FFFD: the record made its text printable,
// but a foreign workspace may hold anything.
std::string dump(const json& j) { return j.dump(-1, ' ', false, json::error_handler_t::replace); }

std::int64_t epoch_ms(sys_time t) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count();
}

// At most `bytes` bytes, not cutting a UTF-8 sequence (MLflow counts
// characters, which are never more than bytes).
std::string cut(std::string_view text, std::size_t bytes) {
  if (text.size() <= bytes) return std::string(text);
  std::size_t end = bytes;
  while (end > 0 && (static_cast<unsigned char>(text[end]) & 0xC0) == 0x80) --end;
  return std::string(text.substr(0, end));
}

std::string percent_encoded(std::string_view text) {
  std::string out;
  for (const char ch : text) {
    const auto c = static_cast<unsigned char>(ch);
    if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_' ||
        c == '.' || c == '~') {
      out += ch;
    } else {
      out += fmt::format("%{:02X}", c);
    }
  }
  return out;
}

// JSON has no NaN nor infinities; MLflow's parser takes them as these strings.
json metric_value(double v) {
  if (std::isnan(v)) return "NaN";
  if (std::isinf(v)) return v > 0 ? "Infinity" : "-Infinity";
  return v;
}

json tag(std::string_view key, std::string_view value) {
  return {{"key", std::string(key)}, {"value", cut(value, max_tag_value)}};
}

std::string_view status_of_run(std::string_view status) {
  if (status == "succeeded") return "FINISHED";
  if (status == "interrupted") return "KILLED";
  if (status == "running") return "RUNNING";
  return "FAILED";  // failed, crashed
}

std::string_view status_of_step(std::string_view status) {
  if (status == "ran" || status == "cached") return "FINISHED";
  if (status == "failed") return "FAILED";
  return "KILLED";  // skipped, cancelled
}

// The REST API of one server, through one kept-alive connection.
class mlflow_api {
 public:
  mlflow_api(std::string_view uri, std::chrono::milliseconds timeout) : uri_(uri), http_(endpoint(uri), timeout) {
    if (const char* token = std::getenv("MLFLOW_TRACKING_TOKEN"); token != nullptr && *token != '\0') {
      http_.add_header("Authorization", fmt::format("Bearer {}", token));
    } else if (const char* user = std::getenv("MLFLOW_TRACKING_USERNAME"); user != nullptr && *user != '\0') {
      const char* password = std::getenv("MLFLOW_TRACKING_PASSWORD");
      const std::string plain = fmt::format("{}:{}", user, password != nullptr ? password : "");
      std::string encoded(boost::beast::detail::base64::encoded_size(plain.size()), '\0');
      encoded.resize(boost::beast::detail::base64::encode(encoded.data(), plain.data(), plain.size()));
      http_.add_header("Authorization", "Basic " + encoded);
    }
  }

  // The answer's JSON; null when the server says the thing asked for does
  // not exist and `missing_ok`.
  json post(std::string_view method, const json& body, bool missing_ok = false) {
    return answer(method, call([&] { return http_.post(target(method), dump(body)); }), missing_ok);
  }
  json get(std::string_view method, std::string_view query, bool missing_ok = false) {
    return answer(method, call([&] { return http_.get(fmt::format("{}?{}", target(method), query)); }), missing_ok);
  }

  [[nodiscard]] const std::string& uri() const noexcept { return uri_; }
  std::size_t requests = 0;

 private:
  static http_endpoint endpoint(std::string_view uri) {
    try {
      return parse_http_uri(uri);
    } catch (const std::invalid_argument& e) {
      throw mlflow_error(fmt::format("MLflow tracking URI {}", e.what()));
    }
  }
  static std::string target(std::string_view method) { return fmt::format("/api/2.0/mlflow/{}", method); }

  template <class Request>
  http_response call(Request&& request) {
    ++requests;
    try {
      return request();
    } catch (const http_unreachable& e) {
      throw mlflow_error(fmt::format("MLflow at {} is unreachable: {}", uri_, e.what()));
    }
  }

  json answer(std::string_view method, const http_response& r, bool missing_ok) const {
    json body = json::parse(r.body, nullptr, false);
    if (r.status >= 200 && r.status < 300) {
      if (body.is_discarded()) {
        throw mlflow_error(
            fmt::format("MLflow at {}: {}: the answer is not JSON (is this an MLflow server?)", uri_, method));
      }
      return body;
    }
    std::string code, message;
    if (body.is_object()) {
      code = body.value("error_code", "");
      message = body.value("message", "");
    }
    if (missing_ok && (code == "RESOURCE_DOES_NOT_EXIST" || (code.empty() && r.status == 404))) return nullptr;
    if (message.empty()) message = cut(r.body, 300);
    throw mlflow_error(fmt::format("MLflow at {}: {}: HTTP {}{}{}: {}", uri_, method, r.status, code.empty() ? "" : " ",
                                   code, message));
  }

  std::string uri_;
  http_client http_;
};

std::string experiment_id(mlflow_api& api, const std::string& name) {
  const std::string query = "experiment_name=" + percent_encoded(name);
  json found = api.get("experiments/get-by-name", query, true);
  if (found.is_null()) {
    try {
      return api.post("experiments/create", {{"name", name}}).at("experiment_id").get<std::string>();
    } catch (const mlflow_error&) {
      found = api.get("experiments/get-by-name", query, true);  // made meanwhile by another run?
      if (found.is_null()) throw;
    }
  }
  const json& e = found.at("experiment");
  if (e.value("lifecycle_stage", "active") == "deleted") {
    throw mlflow_error(fmt::format(
        "MLflow at {}: experiment '{}' is deleted there: restore it, or record the run in another experiment",
        api.uri(), name));
  }
  return e.at("experiment_id").get<std::string>();
}

// Runs of experiment `experiment` matching `filter` (every page).
std::vector<json> search(mlflow_api& api, const std::string& experiment, const std::string& filter) {
  std::vector<json> out;
  std::string token;
  do {
    json body = {{"experiment_ids", {experiment}}, {"filter", filter}, {"max_results", 1000}};
    if (!token.empty()) body["page_token"] = token;
    json page = api.post("runs/search", body);
    for (auto& r : page.value("runs", json::array())) out.push_back(std::move(r));
    token = page.value("next_page_token", "");
  } while (!token.empty());
  return out;
}

std::string tag_of(const json& run, std::string_view key) {
  for (const auto& t : run.at("data").value("tags", json::array()))
    if (t.value("key", "") == key) return t.value("value", "");
  return {};
}

// runs/log-batch calls for `metrics`, `params` and `tags`, within MLflow's limits.
void log_batches(mlflow_api& api, const std::string& run, const std::vector<json>& metrics,
                 const std::vector<json>& params, const std::vector<json>& tags) {
  std::vector<std::pair<mlflow_entry, std::size_t>> entries;
  std::vector<const json*> items;
  const auto add = [&](const std::vector<json>& list, mlflow_entry kind) {
    for (const auto& j : list) {
      entries.emplace_back(kind, dump(j).size() + 1);
      items.push_back(&j);
    }
  };
  add(params, mlflow_entry::param);
  add(tags, mlflow_entry::tag);
  add(metrics, mlflow_entry::metric);
  for (const auto& [begin, end] : mlflow_batches(entries)) {
    json body = {{"run_id", run}, {"metrics", json::array()}, {"params", json::array()}, {"tags", json::array()}};
    for (std::size_t i = begin; i < end; ++i) {
      const char* field = entries[i].first == mlflow_entry::metric  ? "metrics"
                          : entries[i].first == mlflow_entry::param ? "params"
                                                                    : "tags";
      body[field].push_back(*items[i]);
    }
    api.post("runs/log-batch", body);
  }
}

json metric_json(std::string key, double value, sys_time time, std::int64_t step) {
  return {{"key", std::move(key)}, {"value", metric_value(value)}, {"timestamp", epoch_ms(time)}, {"step", step}};
}

}  // namespace

std::string mlflow_key(std::string_view name) {
  std::string out;
  out.reserve(name.size());
  for (const char ch : name) {
    const auto c = static_cast<unsigned char>(ch);
    const bool ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' ||
                    c == '-' || c == '.' || c == ' ' || c == '/';
    out += ok ? ch : '_';
  }
  // A normalized relative path: no empty, "." or ".." segments, no leading
  // or trailing '/' (MLflow refuses names that are not).
  std::string normal;
  std::size_t start = 0;
  while (start <= out.size()) {
    const auto slash = std::min(out.find('/', start), out.size());
    std::string segment = out.substr(start, slash - start);
    if (segment == "." || segment == "..") segment = std::string(segment.size(), '_');
    if (!segment.empty()) normal += (normal.empty() ? "" : "/") + segment;
    start = slash + 1;
  }
  if (normal.size() > max_key) normal.resize(max_key);
  while (!normal.empty() && normal.back() == '/') normal.pop_back();
  return normal.empty() ? std::string("_") : normal;
}

std::vector<std::pair<std::size_t, std::size_t>> mlflow_batches(
    std::span<const std::pair<mlflow_entry, std::size_t>> entries, const mlflow_batch_limits& limits) {
  std::vector<std::pair<std::size_t, std::size_t>> out;
  std::size_t begin = 0, metrics = 0, params = 0, tags = 0, bytes = 0;
  for (std::size_t i = 0; i < entries.size(); ++i) {
    const auto [kind, size] = entries[i];
    const bool fits = (kind != mlflow_entry::metric || metrics < limits.metrics) &&
                      (kind != mlflow_entry::param || params < limits.params) &&
                      (kind != mlflow_entry::tag || tags < limits.tags) && i - begin < limits.entities &&
                      bytes + size <= limits.bytes;
    if (!fits && i > begin) {
      out.emplace_back(begin, i);
      begin = i;
      metrics = params = tags = bytes = 0;
    }
    metrics += kind == mlflow_entry::metric ? 1 : 0;
    params += kind == mlflow_entry::param ? 1 : 0;
    tags += kind == mlflow_entry::tag ? 1 : 0;
    bytes += size;
  }
  if (begin < entries.size()) out.emplace_back(begin, entries.size());
  return out;
}

namespace {

mlflow_sent send(workspace_store& store, const run_row& run, std::string_view uri, const mlflow_send_options& options) {
  mlflow_api api(uri, options.timeout);
  mlflow_sent sent;
  const std::string ui = std::string(uri.substr(0, uri.find_last_not_of('/') + 1));
  sent.experiment_id = experiment_id(api, run.experiment);
  const auto page = [&](const std::string& id) {
    return fmt::format("{}/#/experiments/{}/runs/{}", ui, sent.experiment_id, id);
  };

  // Sent before? Complete: nothing to do. Broken off (or asked to replace): deleted there first.
  for (const auto& old : search(api, sent.experiment_id, fmt::format("tags.`penstock.run_id` = '{}'", run.id))) {
    const std::string id = old.at("info").at("run_id").get<std::string>();
    if (tag_of(old, "penstock.export") == "complete" && !options.replace) {
      sent.already = true;
      sent.run_id = id;
      sent.url = page(id);
      sent.requests = api.requests;
      return sent;
    }
    for (const auto& child : search(api, sent.experiment_id, fmt::format("tags.`mlflow.parentRunId` = '{}'", id)))
      api.post("runs/delete", {{"run_id", child.at("info").at("run_id")}});
    api.post("runs/delete", {{"run_id", id}});
  }

  const auto steps = store.step_runs(run.id);
  const auto metrics = store.metrics(run.id);
  const auto params = store.params(run.id);

  // The parent run.
  std::vector<json> tags = {tag("mlflow.user", run.user),
                            tag("mlflow.source.name", run.pipeline),
                            tag("mlflow.source.type", "LOCAL"),
                            tag("penstock.run_id", run.id),
                            tag("penstock.pipeline", run.pipeline),
                            tag("penstock.structure", run.structure),
                            tag("penstock.status", run.status),
                            tag("penstock.host", run.host),
                            tag("penstock.directory", run.directory),
                            tag("penstock.version", run.version),
                            tag("penstock.steps", fmt::format("{} steps: {} computed, {} cached, {} failed", run.steps,
                                                              run.computed, run.cached, run.failed))};
  if (!run.git_commit.empty()) tags.push_back(tag("mlflow.source.git.commit", run.git_commit));
  if (run.git_dirty) tags.push_back(tag("penstock.git_dirty", *run.git_dirty ? "true" : "false"));
  if (run.exit_code) tags.push_back(tag("penstock.exit_code", std::to_string(*run.exit_code)));
  json created = api.post("runs/create", {{"experiment_id", sent.experiment_id},
                                          {"user_id", run.user},
                                          {"run_name", fmt::format("{} {}", run.pipeline, run.id)},
                                          {"start_time", epoch_ms(run.started)},
                                          {"tags", tags}});
  sent.run_id = created.at("run").at("info").at("run_id").get<std::string>();
  sent.url = page(sent.run_id);

  std::vector<json> param_list;
  std::set<std::string> keys;
  for (const auto& [name, value] : params) {
    std::string key = mlflow_key(name);
    if (key != name) sent.notes.push_back(fmt::format("parameter '{}' is '{}' in MLflow", name, key));
    for (int n = 2; !keys.insert(key).second; ++n) key = fmt::format("{}_{}", mlflow_key(name), n);
    if (value.size() > max_param_value) {
      sent.notes.push_back(fmt::format("parameter '{}' cut to {} of its {} bytes (MLflow's limit)", name,
                                       max_param_value, value.size()));
    }
    param_list.push_back({{"key", key}, {"value", cut(value, max_param_value)}});
  }
  std::vector<json> parent_metrics;
  std::map<std::string, std::vector<json>> step_metrics;  // by step name
  std::map<std::string, std::string> metrics_from;        // step name: the run that logged a cached step's metrics
  for (const auto& m : metrics) {
    parent_metrics.push_back(metric_json(mlflow_key(m.step + "/" + m.name), m.value, m.time, m.step_number));
    step_metrics[m.step].push_back(metric_json(mlflow_key(m.name), m.value, m.time, m.step_number));
    if (!m.from_run.empty()) metrics_from[m.step] = m.from_run;
  }
  log_batches(api, sent.run_id, parent_metrics, param_list, {});
  sent.params = param_list.size();
  sent.metrics = parent_metrics.size();

  // The step runs, nested.
  std::size_t done = 0;
  for (const auto& s : steps) {
    const auto start = run.started + std::chrono::duration_cast<sys_time::duration>(s.started);
    std::vector<json> step_tags = {
        tag("mlflow.parentRunId", sent.run_id),  tag("mlflow.user", run.user),
        tag("mlflow.source.name", run.pipeline), tag("penstock.step", s.name),
        tag("penstock.status", s.status),        tag("penstock.attempts", std::to_string(s.attempts))};
    if (s.worker >= 0) step_tags.push_back(tag("penstock.worker", std::to_string(s.worker)));
    if (s.key) step_tags.push_back(tag("penstock.cache_key", s.key->hex()));
    if (s.output) step_tags.push_back(tag("penstock.output_digest", s.output->hex()));
    if (!s.error.empty()) step_tags.push_back(tag("penstock.error", s.error));
    if (const auto from = metrics_from.find(s.name); from != metrics_from.end())
      step_tags.push_back(tag("penstock.metrics_from", from->second));
    if (s.elements > 0) {
      step_tags.push_back(tag("penstock.elements", fmt::format("{} ({} cached)", s.elements, s.elements_cached)));
    }
    json child = api.post("runs/create", {{"experiment_id", sent.experiment_id},
                                          {"user_id", run.user},
                                          {"run_name", s.name},
                                          {"start_time", epoch_ms(start)},
                                          {"tags", step_tags}});
    const std::string id = child.at("run").at("info").at("run_id").get<std::string>();
    std::vector<json> own;
    if (auto found = step_metrics.find(s.name); found != step_metrics.end()) own = std::move(found->second);
    if (s.status == "ran")
      own.push_back(metric_json("duration_s", std::chrono::duration<double>(s.duration).count(),
                                start + std::chrono::duration_cast<sys_time::duration>(s.duration), 0));
    if (!own.empty()) log_batches(api, id, own, {}, {});
    api.post("runs/update",
             {{"run_id", id},
              {"status", status_of_step(s.status)},
              {"end_time", epoch_ms(start + std::chrono::duration_cast<sys_time::duration>(s.duration))}});
    ++sent.step_runs;
    if (options.progress) options.progress(++done, steps.size());
  }

  json update = {{"run_id", sent.run_id}, {"status", status_of_run(run.status)}};
  if (run.ended) update["end_time"] = epoch_ms(*run.ended);
  api.post("runs/update", update);
  // Last: what says the run is all there.
  api.post("runs/set-tag", {{"run_id", sent.run_id}, {"key", "penstock.export"}, {"value", "complete"}});
  sent.requests = api.requests;
  return sent;
}

}  // namespace

mlflow_sent send_to_mlflow(workspace_store& store, const run_row& run, std::string_view uri,
                           const mlflow_send_options& options) {
  try {
    return send(store, run, uri, options);
  } catch (const json::exception& e) {
    // An answer without the fields MLflow's API documents.
    throw mlflow_error(fmt::format("MLflow at {}: an answer not as MLflow's REST API has it ({})", uri, e.what()));
  }
}

}  // namespace penstock::detail::r1
