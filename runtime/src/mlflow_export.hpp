// mlflow_export: sends a recorded run to an MLflow tracking server through
// its REST API (/api/2.0/mlflow/...): the run with its parameters, every
// metric point and its tags (mlflow.user, mlflow.source.git.commit, the
// pipeline), and each step run as a nested run (mlflow.parentRunId) with its
// own metrics, status and times. Private to the runtime.
//
// In MLflow:
//   parent run   name "PIPELINE RUNID8"; params: the run's; metrics:
//                STEP/NAME for each metric a step logged (every step number);
//                tags: mlflow.user, mlflow.source.name (the pipeline),
//                mlflow.source.git.commit, penstock.run_id, penstock.* facts;
//                status FINISHED (succeeded), FAILED (failed, crashed),
//                KILLED (interrupted), RUNNING (still running)
//   step runs    name STEP; metrics: the step's own, by NAME, and duration_s;
//                tags: mlflow.parentRunId, penstock.status (ran, cached, ...),
//                penstock.cache_key, penstock.output_digest, penstock.error;
//                status FINISHED (ran, cached), FAILED, KILLED (skipped, cancelled)
// A run already sent (tag penstock.run_id, marked complete) is not sent
// twice; one whose sending broke off is deleted there and sent again.
#pragma once

#include <chrono>
#include <cstddef>
#include <functional>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace penstock::detail::r1 {

class workspace_store;
struct run_row;

// The server did not answer, answered with an error, or the URI is not one
// this client can use: the message says which, naming the server.
class mlflow_error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

struct mlflow_sent {
  std::string run_id;  // MLflow's id of the parent run
  std::string experiment_id;
  std::string url;       // the run's page in MLflow's UI
  bool already = false;  // it was there: nothing was sent
  std::size_t step_runs = 0, metrics = 0, params = 0, requests = 0;
  // What had to change to fit MLflow (names it refuses, values too long).
  std::vector<std::string> notes;
};

struct mlflow_send_options {
  // Send it again when it is there (the old one is deleted there).
  bool replace = false;
  std::chrono::milliseconds timeout{std::chrono::seconds{10}};
  // Told after each step run: (sent, of).
  std::function<void(std::size_t, std::size_t)> progress{};
};

// Sends run `run` of `store` to the tracking server at `uri` (http://HOST:PORT[/PATH]),
// into the experiment of the run's name (made when missing). Sends
// MLFLOW_TRACKING_TOKEN as a bearer token, or MLFLOW_TRACKING_USERNAME and
// MLFLOW_TRACKING_PASSWORD as basic credentials, when set. Throws mlflow_error.
[[nodiscard]] mlflow_sent send_to_mlflow(workspace_store& store, const run_row& run, std::string_view uri,
                                         const mlflow_send_options& options = {});

// ---- machinery, exposed for its tests ---------------------------------------

// A name as MLflow takes it for a param, metric or tag key: letters, digits,
// _ - . space and /, as a normalized relative path, at most 250 characters;
// anything else becomes '_'.
[[nodiscard]] std::string mlflow_key(std::string_view name);

// One entry of a runs/log-batch request, and how many bytes its JSON takes.
enum class mlflow_entry : unsigned char { metric, param, tag };
struct mlflow_batch_limits {
  std::size_t metrics = 1000, params = 100, tags = 100, entities = 1000;
  std::size_t bytes = 900'000;  // MLflow refuses requests over 1 MB
};
// Splits `entries` (in order) into consecutive [begin, end) ranges, each
// within `limits`; an entry alone over the byte limit gets a range of its own.
[[nodiscard]] std::vector<std::pair<std::size_t, std::size_t>> mlflow_batches(
    std::span<const std::pair<mlflow_entry, std::size_t>> entries, const mlflow_batch_limits& limits = {});

}  // namespace penstock::detail::r1
