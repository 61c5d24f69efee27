// The MLflow client's parts that need no server: the names MLflow takes, the
// log-batch split at MLflow's limits, tracking URIs, and what an unreachable
// or silent server does. The round trip against a real server is
// tracking.mlflow (mlflow_roundtrip.sh).
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <filesystem>
#include <string>
#include <utility>
#include <vector>

#include "http_client.hpp"
#include "mlflow_export.hpp"
#include "workspace_store.hpp"

namespace {

using namespace penstock::detail::r1;

TEST(MlflowKey, KeepsWhatMlflowTakes) {
  EXPECT_EQ(mlflow_key("train/loss"), "train/loss");
  EXPECT_EQ(mlflow_key("learning rate-2.x_y"), "learning rate-2.x_y");
}

TEST(MlflowKey, ReplacesOtherCharactersAndNormalizesThePath) {
  EXPECT_EQ(mlflow_key("label:name"), "label_name");
  EXPECT_EQ(mlflow_key("map[3]"), "map_3_");
  EXPECT_EQ(mlflow_key("a//b"), "a/b");
  EXPECT_EQ(mlflow_key("/x/"), "x");
  EXPECT_EQ(mlflow_key("../a/./b"), "__/a/_/b");
  EXPECT_EQ(mlflow_key(""), "_");
  EXPECT_EQ(mlflow_key("/"), "_");
  EXPECT_EQ(mlflow_key("gr\xc3\xb6\xc3\x9f"
                       "e"),
            "gr____e");
  EXPECT_EQ(mlflow_key(std::string(300, 'k')).size(), 250U);
}

std::vector<std::pair<mlflow_entry, std::size_t>> entries(mlflow_entry kind, std::size_t n, std::size_t bytes = 60) {
  return std::vector<std::pair<mlflow_entry, std::size_t>>(n, {kind, bytes});
}

TEST(MlflowBatches, MetricsAtMostAThousandACall) {
  const auto batches = mlflow_batches(entries(mlflow_entry::metric, 2500));
  const std::vector<std::pair<std::size_t, std::size_t>> expected{{0, 1000}, {1000, 2000}, {2000, 2500}};
  EXPECT_EQ(batches, expected);
}

TEST(MlflowBatches, ParamsAndTagsAtMostAHundredACall) {
  auto all = entries(mlflow_entry::param, 150);
  const auto tags = entries(mlflow_entry::tag, 120);
  all.insert(all.end(), tags.begin(), tags.end());
  const auto metrics = entries(mlflow_entry::metric, 10);
  all.insert(all.end(), metrics.begin(), metrics.end());
  // params 0..99 | params 100..149 and tags 150..249 | tags 250..269 and the metrics
  const std::vector<std::pair<std::size_t, std::size_t>> expected{{0, 100}, {100, 250}, {250, 280}};
  EXPECT_EQ(mlflow_batches(all), expected);
}

TEST(MlflowBatches, AtMostAThousandEntitiesACall) {
  mlflow_batch_limits limits;
  limits.metrics = 5000;
  const auto batches = mlflow_batches(entries(mlflow_entry::metric, 1500), limits);
  ASSERT_EQ(batches.size(), 2U);
  EXPECT_EQ(batches[0], std::make_pair(std::size_t{0}, std::size_t{1000}));
}

TEST(MlflowBatches, BytesUnderTheRequestLimit) {
  // Three params of 400 kB: two would pass 900 kB.
  const auto batches = mlflow_batches(entries(mlflow_entry::param, 3, 400'000));
  const std::vector<std::pair<std::size_t, std::size_t>> expected{{0, 2}, {2, 3}};
  EXPECT_EQ(batches, expected);
  // One alone over the limit still goes, alone (MLflow says why it refuses it).
  const auto big = mlflow_batches(entries(mlflow_entry::tag, 2, 2'000'000));
  const std::vector<std::pair<std::size_t, std::size_t>> alone{{0, 1}, {1, 2}};
  EXPECT_EQ(big, alone);
  EXPECT_TRUE(mlflow_batches({}).empty());
}

TEST(HttpUri, HostPortAndPath) {
  auto e = parse_http_uri("http://127.0.0.1:5000");
  EXPECT_EQ(e.host, "127.0.0.1");
  EXPECT_EQ(e.port, "5000");
  EXPECT_EQ(e.base_path, "");
  EXPECT_EQ(e.host_header, "127.0.0.1:5000");
  e = parse_http_uri("http://tracking");
  EXPECT_EQ(e.port, "80");
  e = parse_http_uri("http://[::1]:8080/mlflow/");
  EXPECT_EQ(e.host, "::1");
  EXPECT_EQ(e.port, "8080");
  EXPECT_EQ(e.base_path, "/mlflow");
  EXPECT_EQ(e.host_header, "[::1]:8080");
}

void expect_refused(const std::string& uri, const std::string& says) {
  try {
    (void)parse_http_uri(uri);
    ADD_FAILURE() << uri << " was taken";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find(says), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find(uri), std::string::npos) << e.what();
  }
}

TEST(HttpUri, RefusesWhatItCannotUseSayingWhy) {
  expect_refused("https://mlflow.example:443", "https is not supported");
  expect_refused("127.0.0.1:5000", "is not an http:// URI");
  expect_refused("http://:5000", "names no host");
  expect_refused("http://h:0", "is not a port");
  expect_refused("http://h:70000", "is not a port");
  expect_refused("http://h:5x", "is not a port");
  expect_refused("http://user:pw@h:5000", "MLFLOW_TRACKING_TOKEN");
  expect_refused("http://[::1:5000", "unclosed");
}

// A port on 127.0.0.1 with a socket that listens but never answers (or,
// closed, one where nothing listens).
class silent_port {
 public:
  explicit silent_port(bool listening) {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    EXPECT_EQ(::bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
    socklen_t n = sizeof a;
    ::getsockname(fd_, reinterpret_cast<sockaddr*>(&a), &n);
    port_ = ntohs(a.sin_port);
    if (listening) {
      EXPECT_EQ(::listen(fd_, 4), 0);
    } else {
      ::close(fd_);
      fd_ = -1;
    }
  }
  ~silent_port() {
    if (fd_ >= 0) ::close(fd_);
  }
  silent_port(const silent_port&) = delete;
  silent_port& operator=(const silent_port&) = delete;
  [[nodiscard]] std::string uri() const { return "http://127.0.0.1:" + std::to_string(port_); }

 private:
  int fd_ = -1;
  int port_ = 0;
};

TEST(HttpClient, NothingListeningIsUnreachable) {
  const silent_port closed(false);
  http_client client(parse_http_uri(closed.uri()), std::chrono::milliseconds(2000));
  try {
    (void)client.get("/health");
    ADD_FAILURE() << "no exception";
  } catch (const http_unreachable& e) {
    EXPECT_NE(std::string(e.what()).find("127.0.0.1:"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("refused"), std::string::npos) << e.what();
  }
}

TEST(HttpClient, AServerThatNeverAnswersTimesOut) {
  const silent_port silent(true);
  http_client client(parse_http_uri(silent.uri()), std::chrono::milliseconds(200));
  try {
    (void)client.post("/api/2.0/mlflow/runs/create", "{}");
    ADD_FAILURE() << "no exception";
  } catch (const http_unreachable& e) {
    EXPECT_NE(std::string(e.what()).find("no answer within 200 ms"), std::string::npos) << e.what();
  }
}

TEST(SendToMlflow, AnUnreachableServerIsAnErrorNamingIt) {
  const auto dir = std::filesystem::temp_directory_path() / ("penstock-mlflow-" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  {
    const auto store = workspace_store::open_for_writing(dir / "runs.db");
    run_row run;
    run.id = "r1";
    run.experiment = "Default";
    const silent_port closed(false);
    try {
      (void)send_to_mlflow(*store, run, closed.uri(), {.timeout = std::chrono::milliseconds(2000)});
      ADD_FAILURE() << "no exception";
    } catch (const mlflow_error& e) {
      EXPECT_NE(std::string(e.what()).find("MLflow at " + closed.uri() + " is unreachable"), std::string::npos)
          << e.what();
    }
    try {
      (void)send_to_mlflow(*store, run, "https://x:1");
      ADD_FAILURE() << "no exception";
    } catch (const mlflow_error& e) {
      EXPECT_NE(std::string(e.what()).find("https is not supported"), std::string::npos) << e.what();
    }
  }
  std::filesystem::remove_all(dir);
}

}  // namespace
