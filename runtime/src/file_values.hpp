// File and directory values (ps::file, ps::directory) in the runtime: their
// content digests (through the cache index's stat cache), the directories
// steps write their files in, and the files' storage in and restoration from
// the cache. Private to the runtime.
#pragma once

#include <atomic>
#include <cstddef>
#include <filesystem>
#include <functional>
#include <mutex>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <penstock/context.hpp>
#include <penstock/file.hpp>
#include <penstock/graph_description.hpp>

#include "cache_store.hpp"
#include "run_state.hpp"

namespace penstock::detail::r1 {

// Hashes the file or directory at `path`. With a store, a file whose device,
// inode, size, mtime and ctime equal those recorded when it was last hashed
// is not read again, unless it was modified within a second of that hash
// (git's "racy" rule: a write in the same timestamp tick could go unseen);
// what is hashed is recorded. Throws file_error naming the path.
[[nodiscard]] path_contents hash_tree(path_kind kind, const std::filesystem::path& path, cache_store* stats);

// hash_tree for many files and directories at once: the stat cache is asked
// once for all of them and told once what was hashed. A file is stat'ed,
// not opened, unless its digest is unknown. Each result holds its contents
// or why it could not be hashed.
struct tree_request {
  path_kind kind = path_kind::file;
  const std::filesystem::path* path = nullptr;  // the caller's, alive until hash_trees returns
  bool either = false;                          // a file or a directory, whichever it is (then `kind` is ignored)
};
struct tree_result {
  path_kind kind = path_kind::file;  // what it was hashed as
  path_contents contents;
  std::string error{};
};
[[nodiscard]] std::vector<tree_result> hash_trees(std::span<const tree_request> requests, cache_store* stats);
// The same, with the stat cache asked for once every file is stat'ed:
// `stats` may wait for a store still being opened (or throw its error).
[[nodiscard]] std::vector<tree_result> hash_trees(std::span<const tree_request> requests,
                                                  const std::function<cache_store*()>& stats);

// Hashes every ps::file / ps::directory parameter into its slot (with the
// store's stat cache when there is one). Throws param_error naming the
// parameter and the path when one cannot be read.
void seal_file_params(const graph_description& graph, run_state& state, cache_store* stats);

// Checks that `path` is a readable file or directory of the right kind;
// throws file_error saying what is wrong.
void check_readable(path_kind kind, const std::filesystem::path& path);

// The directories a run's steps write their files in: <base>/<step>-<n>/,
// made on demand, one per attempt.
class output_directories final : public output_area {
 public:
  // `name_base` names the run's directory; called once, when a step first
  // asks for a directory (in make_directory or base()).
  explicit output_directories(std::function<std::filesystem::path()> name_base) : name_base_(std::move(name_base)) {}
  std::filesystem::path make_directory(std::string_view step, std::size_t element) override;
  [[nodiscard]] const std::filesystem::path& base() {
    std::call_once(named_, [this] { base_ = name_base_(); });
    return base_;
  }
  // Whether any directory was made.
  [[nodiscard]] bool used() const noexcept { return made_.load(std::memory_order_relaxed) != 0; }

 private:
  std::function<std::filesystem::path()> name_base_;
  std::once_flag named_;
  std::filesystem::path base_;
  std::atomic<std::size_t> made_{0};
};

// The cache key under which the bytes of one file with content digest `content` are stored.
[[nodiscard]] digest file_content_key(const digest& content);

// Stores the bytes of every file of `value` (already hashed) in the cache,
// unless they are stored already. Throws on any failure (a full disk; a file
// that changed since it was hashed).
void store_files(cache_store& store, const path_value& value, std::string_view run_id);

// Makes `value` (loaded from the cache: its name and contents) point at a
// read-only copy of its files under <cache>/files/<digest>/<name>, made from
// the stored bytes by hard link where it can be, else by copy, and checked
// against their digests. Throws cache_error when a file's bytes are missing
// or damaged (a reported miss: the caller recomputes the step).
void restore_files(cache_store& store, path_value& value);

}  // namespace penstock::detail::r1
