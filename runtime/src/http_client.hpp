// http_client: a small HTTP/1.1 client (Boost.Beast) for the services the
// runtime talks to (an MLflow tracking server): one keep-alive connection,
// a time limit on every connect, write and read, one retry when a reused
// connection turns out to have been closed by the server. Plain http only.
// Private to the runtime.
#pragma once

#include <chrono>
#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace penstock::detail::r1 {

// Where a service is: http://HOST[:PORT][/PATH]; HOST may be [v6 address].
struct http_endpoint {
  std::string host;       // without brackets
  std::string port;       // "80" when the URI names none
  std::string base_path;  // "" or "/prefix", without a trailing slash
  std::string host_header;
};

// Throws std::invalid_argument saying what is wrong with `uri` (https, no
// host, a bad port).
[[nodiscard]] http_endpoint parse_http_uri(std::string_view uri);

// The server could not be reached or did not answer in time.
class http_unreachable : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

struct http_response {
  int status = 0;
  std::string body;
};

class http_client {
 public:
  http_client(http_endpoint endpoint, std::chrono::milliseconds timeout);
  http_client(const http_client&) = delete;
  http_client& operator=(const http_client&) = delete;
  ~http_client();

  // `target` is appended to the endpoint's base path. Throws
  // http_unreachable when no answer came; any status is returned.
  http_response get(std::string_view target);
  http_response post(std::string_view target, std::string_view json_body);

  // Extra headers on every request (Authorization).
  void add_header(std::string name, std::string value) { headers_.emplace_back(std::move(name), std::move(value)); }

 private:
  http_response request(bool post, std::string_view target, std::string_view body);
  struct connection;
  http_endpoint endpoint_;
  std::chrono::milliseconds timeout_;
  std::vector<std::pair<std::string, std::string>> headers_;
  std::unique_ptr<connection> connection_;
};

}  // namespace penstock::detail::r1
