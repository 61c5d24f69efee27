// cache_error: a failure of the cache or of the run record's store
// (cache_store.hpp says when it is thrown).
#pragma once

#include <stdexcept>

namespace penstock::detail::r1 {

class cache_error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

}  // namespace penstock::detail::r1
