// http_client: see http_client.hpp. Every operation is asynchronous on the
// client's own io_context, run until it completes: that is how Beast's
// tcp_stream puts a time limit on each (its synchronous calls have none).
#include "http_client.hpp"

#include <charconv>
#include <optional>

#include <fmt/format.h>
#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <penstock/version.hpp>

namespace penstock::detail::r1 {

namespace beast = boost::beast;
namespace http = beast::http;
namespace net = boost::asio;
using tcp = net::ip::tcp;

http_endpoint parse_http_uri(std::string_view uri) {
  constexpr std::string_view scheme = "http://";
  if (uri.starts_with("https://")) {
    throw std::invalid_argument(fmt::format(
        "'{}': https is not supported (penstock's client speaks plain http); use http:// or a local TLS proxy", uri));
  }
  if (!uri.starts_with(scheme)) {
    throw std::invalid_argument(fmt::format("'{}' is not an http:// URI (e.g. http://127.0.0.1:5000)", uri));
  }
  std::string_view rest = uri.substr(scheme.size());
  const auto slash = rest.find('/');
  std::string_view authority = rest.substr(0, slash);
  std::string_view path = slash == std::string_view::npos ? std::string_view() : rest.substr(slash);
  while (path.ends_with('/')) path.remove_suffix(1);
  if (authority.find('@') != std::string_view::npos) {
    throw std::invalid_argument(
        fmt::format("'{}': credentials in the URI are not supported; set MLFLOW_TRACKING_TOKEN instead", uri));
  }
  http_endpoint out;
  std::string_view port;
  if (authority.starts_with('[')) {
    const auto close = authority.find(']');
    if (close == std::string_view::npos)
      throw std::invalid_argument(fmt::format("'{}': unclosed '[' in the host", uri));
    out.host = std::string(authority.substr(1, close - 1));
    std::string_view after = authority.substr(close + 1);
    if (!after.empty()) {
      if (after.front() != ':') throw std::invalid_argument(fmt::format("'{}': expected ':PORT' after ']'", uri));
      port = after.substr(1);
    }
  } else {
    const auto colon = authority.rfind(':');
    out.host = std::string(authority.substr(0, colon));
    if (colon != std::string_view::npos) port = authority.substr(colon + 1);
  }
  if (out.host.empty()) throw std::invalid_argument(fmt::format("'{}' names no host", uri));
  if (port.empty()) {
    out.port = "80";
  } else {
    unsigned value = 0;
    const auto [end, ec] = std::from_chars(port.data(), port.data() + port.size(), value);
    if (ec != std::errc() || end != port.data() + port.size() || value == 0 || value > 65535) {
      throw std::invalid_argument(fmt::format("'{}': '{}' is not a port (1 to 65535)", uri, port));
    }
    out.port = std::string(port);
  }
  out.base_path = std::string(path);
  out.host_header = std::string(authority);
  return out;
}

struct http_client::connection {
  net::io_context io;
  std::optional<beast::tcp_stream> stream;  // made anew for each connection
  beast::flat_buffer buffer;
  bool open = false;
};

http_client::http_client(http_endpoint endpoint, std::chrono::milliseconds timeout)
    : endpoint_(std::move(endpoint)), timeout_(timeout), connection_(std::make_unique<connection>()) {}

http_client::~http_client() {
  if (connection_ && connection_->open) {
    beast::error_code ignored;
    connection_->stream->socket().shutdown(tcp::socket::shutdown_both, ignored);
  }
}

http_response http_client::get(std::string_view target) { return request(false, target, {}); }

http_response http_client::post(std::string_view target, std::string_view json_body) {
  return request(true, target, json_body);
}

namespace {

// Runs the io_context until the operation started before it completes (the
// stream's expiry ends it with beast::error::timeout).
void run(net::io_context& io) {
  io.restart();
  io.run();
}

bool stale_connection(const beast::error_code& ec) {
  return ec == http::error::end_of_stream || ec == net::error::eof || ec == net::error::connection_reset ||
         ec == net::error::broken_pipe || ec == net::error::connection_aborted;
}

}  // namespace

http_response http_client::request(bool post, std::string_view target, std::string_view body) {
  const std::string where = fmt::format("{}:{}", endpoint_.host, endpoint_.port);
  http::request<http::string_body> req{post ? http::verb::post : http::verb::get,
                                       endpoint_.base_path + std::string(target), 11};
  req.set(http::field::host, endpoint_.host_header);
  req.set(http::field::user_agent, fmt::format("penstock/{}", penstock::version));
  req.set(http::field::accept, "application/json");
  for (const auto& [name, value] : headers_) req.set(name, value);
  if (post) {
    req.set(http::field::content_type, "application/json");
    req.body() = std::string(body);
  }
  req.keep_alive(true);
  req.prepare_payload();

  auto& c = *connection_;
  for (int attempt = 0;; ++attempt) {
    const bool reused = c.open;
    beast::error_code ec;
    if (!c.open) {
      tcp::resolver resolver(c.io);
      std::optional<tcp::resolver::results_type> found;
      resolver.async_resolve(endpoint_.host, endpoint_.port, [&](beast::error_code e, tcp::resolver::results_type r) {
        ec = e;
        found = std::move(r);
      });
      c.io.restart();
      c.io.run_for(timeout_);
      if (!found && !ec) {
        resolver.cancel();
        run(c.io);
        throw http_unreachable(fmt::format("{}: the host name was not resolved within {} ms", where, timeout_.count()));
      }
      if (ec) throw http_unreachable(fmt::format("{}: {}", endpoint_.host, ec.message()));
      c.stream.emplace(c.io);
      c.stream->expires_after(timeout_);
      c.stream->async_connect(*found, [&](beast::error_code e, const tcp::endpoint&) { ec = e; });
      run(c.io);
      if (ec) {
        c.stream->close();
        throw http_unreachable(fmt::format("{}: {}", where, ec.message()));
      }
      c.open = true;
      c.buffer.clear();
    }
    c.stream->expires_after(timeout_);
    http::async_write(*c.stream, req, [&](beast::error_code e, std::size_t) { ec = e; });
    run(c.io);
    http::response<http::string_body> res;
    bool started = false;  // any byte of the answer came
    if (!ec) {
      http::response_parser<http::string_body> parser;
      parser.body_limit(64 * 1024 * 1024);
      c.stream->expires_after(timeout_);
      http::async_read(*c.stream, c.buffer, parser, [&](beast::error_code e, std::size_t n) {
        ec = e;
        started = n > 0;
      });
      run(c.io);
      if (!ec) res = parser.release();
    }
    if (ec) {
      c.stream->close();
      c.open = false;
      // A kept-alive connection the server had closed: once more on a new one.
      if (reused && attempt == 0 && !started && stale_connection(ec)) continue;
      if (ec == beast::error::timeout) {
        throw http_unreachable(fmt::format("{}: no answer within {} ms", where, timeout_.count()));
      }
      throw http_unreachable(fmt::format("{}: {}", where, ec.message()));
    }
    if (!res.keep_alive()) {
      beast::error_code ignored;
      c.stream->socket().shutdown(tcp::socket::shutdown_both, ignored);
      c.stream->close();
      c.open = false;
    }
    return {static_cast<int>(res.result_int()), std::move(res.body())};
  }
}

}  // namespace penstock::detail::r1
