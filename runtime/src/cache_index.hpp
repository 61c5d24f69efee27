// cache_index: the schema of a cache's index.sqlite, as numbered migrations
// (cache_index.cpp, which also opens the index: see cache_store::state::open).
#pragma once

#include <span>

#include "sqlite_db.hpp"

namespace penstock::detail::r1 {

// 1: entries, leases, in_use. 2: adds runs and steps (run and step records);
// the tables of version 1 are unchanged. 3: adds entries.inline_value (NULL:
// the value is in a blob file; else its bytes). 4: adds leases.started and
// in_use.started, the owner process's start time (NULL in older rows), so a
// row left by a dead process is not kept alive by a new process given the
// same pid. 5: adds file_stats (the digests of files, by path, with the
// stat fields they had when hashed: known_file).
inline constexpr int index_schema_version = 5;
// The oldest index a read-only store can read (it cannot migrate one): from
// 3 on, entries has every column it reads; a missing file_stats table is made
// empty, in the connection's temp schema.
inline constexpr int oldest_readable_schema = 3;

// The migrations, 1 to index_schema_version, for sqlite::migrate.
[[nodiscard]] std::span<const sqlite::migration> index_migrations();

}  // namespace penstock::detail::r1
