// workspace_store: the record of every run (experiments, runs, parameters,
// step runs, metrics, logs, lineage) in one SQLite file in WAL mode, shared
// by every process that runs or queries pipelines there. Private to the runtime.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <penstock/digest.hpp>
#include <penstock/run_report.hpp>

#include "cache_error.hpp"
#include "process_identity.hpp"
#include "sqlite_db.hpp"
#include "step_tables.hpp"

namespace penstock::detail::r1 {

using sys_time = std::chrono::system_clock::time_point;

// The workspace file of a cache directory.
[[nodiscard]] std::filesystem::path workspace_file(const std::filesystem::path& cache_directory);
// The cache directory a run with `options` uses (cache_options::directory,
// else default_cache_directory()), and the workspace it records in.
[[nodiscard]] std::filesystem::path cache_directory_of(const run_options& options);
[[nodiscard]] std::filesystem::path workspace_of(const run_options& options);

// A run as recorded. `status` is what the run wrote (running, succeeded,
// failed, interrupted), or crashed: a run still marked running whose process
// is gone (this host) or whose heartbeat is older than three intervals.
struct run_row {
  std::string id;
  std::string experiment;
  std::string pipeline;
  std::string structure;  // the pipeline's structural digest (hex)
  std::string status;
  sys_time started{};
  std::optional<sys_time> ended;
  sys_time heartbeat{};
  std::chrono::milliseconds heartbeat_interval{0};
  std::string host;
  std::string user;
  std::int64_t pid = 0;
  std::optional<std::int64_t> pid_started;
  std::string directory;   // the working directory
  std::string git_commit;  // "" outside a git working tree
  std::optional<bool> git_dirty;
  std::string version;  // penstock's
  std::optional<int> exit_code;
  std::uint64_t steps = 0, computed = 0, cached = 0, failed = 0;
};

// One step's part in a run. status: ran, cached, failed, skipped, cancelled.
struct step_run_row {
  std::uint32_t node = 0;  // its index in the pipeline
  std::string name;
  std::string status;
  std::uint32_t attempts = 0;
  std::chrono::nanoseconds started{0};  // from the run's start
  std::chrono::nanoseconds duration{0};
  int worker = -1;
  std::optional<digest> key;
  std::optional<digest> output;
  std::string error;
  std::uint64_t elements = 0, elements_cached = 0;
};

// Input `position` of step `node`: the output of step `producer`, with its
// content digest when the run knew it (with the cache).
struct step_input_row {
  std::uint32_t node = 0;
  std::uint32_t position = 0;
  std::uint32_t producer = 0;
  std::optional<digest> content;
};

// The pipeline a run records, written with the run's first row: its
// structure table is stored once per structural digest.
struct run_structure {
  digest hash{};                             // structure_digest(graph)
  const graph_description* graph = nullptr;  // encoded if the workspace has no such structure
  std::string data{};                        // or already encoded (encode_structure)
};

// A finished run's steps, encoded as the workspace stores them (step_tables.hpp).
struct run_steps {
  std::string outcomes;
  std::string timings;
  std::vector<std::pair<std::uint32_t, std::string>> errors;  // node, its error text
};

struct metric_row {
  std::string step;
  std::string name;
  double value = 0;
  std::int64_t step_number = 0;
  sys_time time{};
  // Empty: logged by this run. Else the run whose step computed the value
  // this run's step found in the cache: its metric, the step logging none
  // when it hits.
  std::string from_run{};
};

struct log_row {
  std::string step;
  std::optional<std::uint64_t> element;
  sys_time time{};
  std::string line;
};

// What one write adds to a run's record, in one transaction: everything
// optional but the run's id.
struct run_write {
  std::string run{};
  const run_row* begin = nullptr;  // the run's first row (with `params` and `structure`)
  const run_structure* structure = nullptr;
  std::span<const std::pair<std::string, std::string>> params{};
  std::optional<sys_time> heartbeat{};
  const run_steps* steps = nullptr;  // with `end`: every step's outcome and timing
  std::span<const metric_row> metrics{};
  std::span<const log_row> logs{};
  const run_row* end = nullptr;  // its final status, end time and counts
};

struct run_filter {
  std::string experiment;
  std::string status;
  std::string pipeline;
  std::vector<std::pair<std::string, std::string>> params;  // each must match
  std::size_t limit = 0;                                    // 0: all
};

// A step run that produced or consumed a value, for `lineage`.
struct lineage_row {
  std::string run;
  std::string step;
  std::string status;
  sys_time started{};
  std::optional<digest> content;
  std::optional<digest> key{};  // the step run's cache key, when it had one
};

class workspace_store {
 public:
  // A shared store's write found the file's schema changed (another
  // process migrated it since it was opened): nothing was written, and the
  // next shared_for_writing() opens it again.
  class schema_changed : public cache_error {
   public:
    using cache_error::cache_error;
  };

  static constexpr int schema_version = 2;

  // Opens (making it and its directory if needed) for recording runs.
  // Throws cache_error naming the file when it cannot be opened for writing,
  // or its schema is newer than this penstock's. Both opens first wait for
  // this process's runs that ended to be written (record_writer.hpp).
  static std::unique_ptr<workspace_store> open_for_writing(const std::filesystem::path& file);
  // The same, but one connection per file and process, kept open between
  // runs (a connection's opening, statements and closing checkpoint are
  // most of a short run's recording); opened again when the file at that
  // path is no longer the one it opened (deleted, replaced) or after fork().
  // Its writes are serialized.
  static std::shared_ptr<workspace_store> shared_for_writing(const std::filesystem::path& file);
  // A passive checkpoint of `file`'s WAL through a connection opened for
  // it (and closed) here: it runs beside the commits of the shared store,
  // which do not wait for it. cache_error if it cannot be opened.
  static void checkpoint_wal(const std::filesystem::path& file);
  // Opens an existing workspace for queries (migrating an older schema when
  // it can be written). Throws cache_error when there is none at `file`, or
  // it cannot be read.
  static std::unique_ptr<workspace_store> open_for_reading(const std::filesystem::path& file);

  explicit workspace_store(const std::filesystem::path& file);
  workspace_store(const workspace_store&) = delete;
  workspace_store& operator=(const workspace_store&) = delete;

  void write(const run_write& w);
  // Several runs' writes in one transaction (one commit, whose cost is most of a short run's).
  void write(std::span<const run_write> writes);
  // A shared store does not checkpoint its WAL as it commits; its last
  // write left the WAL long enough to checkpoint (record_writer does it,
  // with checkpoint_wal, on its own thread).
  [[nodiscard]] bool wal_is_long();
  void set_exit_code(std::string_view run, int code);

  // Newest first.
  [[nodiscard]] std::vector<run_row> runs(const run_filter& filter);
  // A run by its id, a unique prefix of one, or "latest"; nullopt when none
  // matches; throws std::invalid_argument when a prefix names several.
  [[nodiscard]] std::optional<run_row> find_run(std::string_view id);
  [[nodiscard]] std::vector<std::pair<std::string, std::string>> params(std::string_view run);
  // A run's steps, in pipeline order (none for a run that did not finish).
  [[nodiscard]] std::vector<step_run_row> step_runs(std::string_view run);
  // Each step's inputs from other steps, with the digests the run knew.
  [[nodiscard]] std::vector<step_input_row> step_inputs(std::string_view run);
  // What the run's steps logged; then, for each step that hit the cache,
  // what the step logged in the run that computed its value (the latest
  // one before this run with the same cache key), `from_run` naming it.
  // Ordered by name, step number, then as logged.
  [[nodiscard]] std::vector<metric_row> metrics(std::string_view run);
  // All of a run's lines, or one step's, in the order they were logged.
  [[nodiscard]] std::vector<log_row> logs(std::string_view run, std::string_view step = {});
  // Every step run, of any run, whose output had digest `content`, oldest first.
  [[nodiscard]] std::vector<lineage_row> producers(const digest& content);
  // Every step run, of any run, that read a value with digest `content`.
  [[nodiscard]] std::vector<lineage_row> consumers(const digest& content);
  // Digests whose hex form starts with `prefix` (outputs of step runs).
  [[nodiscard]] std::vector<digest> digests_with_prefix(std::string_view prefix);

  [[nodiscard]] const std::filesystem::path& file() const noexcept { return db_.file(); }

 private:
  [[nodiscard]] run_row read_run(const sqlite::query& q) const;
  void apply(const run_write& w);  // inside a write transaction
  void open_writable();
  // Stores `steps`' outcomes (once per distinct table) and errors; returns the outcomes' id.
  std::int64_t write_steps(std::string_view run, const run_steps& steps);
  // The id of `structure`'s row in structures, inserted if new.
  std::int64_t structure_id(const run_structure& structure);
  // A run's tables (empty optional: not recorded), decoded; throws cache_error if damaged.
  struct stored_steps {
    structure_table structure;
    std::vector<step_outcome> outcomes;
    std::vector<step_timing> timings;
  };
  [[nodiscard]] std::optional<stored_steps> steps_of(std::string_view run);
  // The step runs whose outcomes table `outcomes` has `content` as node `node`'s output (producers)
  // or as an input of a node (consumers).
  void lineage_of(const digest& content, bool consumers, std::vector<lineage_row>& out);

  sqlite::database db_;
  process_identity me_;
  std::mutex write_mutex_;                // writes through a shared store
  bool shared_ = false;                   // made by shared_for_writing: its writes check the schema
  bool stale_ = false;                    // (under write_mutex_) a write found the schema changed
  std::uint64_t device_ = 0, inode_ = 0;  // of the file when opened
};

}  // namespace penstock::detail::r1
