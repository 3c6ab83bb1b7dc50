// idle_agents: many real agent sessions from one process, held idle, so the edge's cost per idle
// agent can be measured (bench/idle.sh; issue 15 item 4).
//
// Each session is a whole agent::TunnelAgent (the code `wtmesh http` runs: QUIC dial, WebTransport
// session, control stream, REGISTER, heartbeat, telemetry, keep-alive), each with its own UDP socket,
// so the edge sees N connections from N source ports. All of them share one thread and one
// io_context. Each registers one http tunnel, PREFIX-I.DOMAIN, whose local service is never asked for.
//
//   idle_agents --edge https://localhost:4433 --ca ca.pem --token-file tok --sessions 10000
//   idle_agents ... --token-file a --token-file b ...   (sessions spread over the tokens' subjects)
//
// Prints one line a second while sessions open ("open 4200/10000 registered 4100 ..."), then
// "ready N sessions in S s" once every tunnel is registered, then one line every --report seconds
// (sessions open, reconnects since ready, this process's RSS), until SIGINT/SIGTERM or --hold.
#include <spdlog/spdlog.h>
#include <sys/resource.h>

#include <CLI/CLI.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <memory>
#include <string>
#include <vector>

#include "agent/edge_url.h"
#include "agent/tunnel_agent.h"
#include "agent/tunnel_config.h"

namespace {

namespace asio = boost::asio;
using namespace wtmesh;
using Clock = std::chrono::steady_clock;

long rss_kib() {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line))
    if (line.rfind("VmRSS:", 0) == 0) return std::stol(line.substr(6));
  return 0;
}

struct Args {
  std::string edge;
  std::string ca;
  std::vector<std::string> token_files;  // session i uses token_files[i % size]
  std::string domain = "localhost";
  std::string prefix = "idle";
  size_t sessions = 1000;
  double rate = 200;  // new sessions per second
  int hold_s = 0;     // 0: until a signal
  int report_s = 10;
  int ready_timeout_s = 300;
};

class Fleet {
 public:
  Fleet(asio::io_context& io, Args args) : io_(io), args_(std::move(args)), tick_(io) {}

  bool start(std::string* error) {
    auto edge = agent::parse_edge_url(args_.edge, error);
    if (!edge) return false;
    edge_ = *edge;
    started_at_ = Clock::now();
    arm(std::chrono::milliseconds(0));
    return true;
  }

  void stop() {
    for (auto& a : agents_) a->stop();
  }

  bool failed() const { return failed_; }

 private:
  void arm(std::chrono::milliseconds after) {
    tick_.expires_after(after);
    tick_.async_wait([this](const boost::system::error_code& ec) {
      if (!ec) step();
    });
  }

  // Opens the sessions due by now (rate per second), reports once a second, then the idle reports.
  void step() {
    const double elapsed = std::chrono::duration<double>(Clock::now() - started_at_).count();
    const auto due = std::min(args_.sessions, static_cast<size_t>(elapsed * args_.rate) + 1);
    while (agents_.size() < due) add();
    const auto now = Clock::now();
    if (!ready_at_) {
      if (registered_once_ == args_.sessions && connected() == args_.sessions) {
        ready_at_ = now;
        sessions_at_ready_ = sessions_opened();
        std::printf("ready %zu sessions in %.1f s, rss %ld KiB\n", args_.sessions,
                    std::chrono::duration<double>(now - started_at_).count(), rss_kib());
        std::fflush(stdout);
        last_report_ = now;
      } else if (now - last_report_ >= std::chrono::seconds(1)) {
        std::printf("open %zu/%zu registered %zu (%zu registrations) refused %zu\n", connected(),
                    args_.sessions, registered_once_, registered_, refused_);
        std::fflush(stdout);
        last_report_ = now;
        if (now - started_at_ > std::chrono::seconds(args_.ready_timeout_s)) {
          std::printf("not ready after %d s: %zu of %zu registered\n", args_.ready_timeout_s,
                      registered_once_, args_.sessions);
          failed_ = true;
          stop();
          io_.stop();
          return;
        }
      }
    } else {
      if (now - last_report_ >= std::chrono::seconds(args_.report_s)) {
        std::printf("held %zu/%zu open, %llu reconnects since ready, rss %ld KiB\n", connected(),
                    args_.sessions, static_cast<unsigned long long>(sessions_opened() - sessions_at_ready_),
                    rss_kib());
        std::fflush(stdout);
        last_report_ = now;
      }
      if (args_.hold_s > 0 && now - *ready_at_ >= std::chrono::seconds(args_.hold_s)) {
        stop();
        io_.stop();
        return;
      }
    }
    arm(std::chrono::milliseconds(agents_.size() < args_.sessions ? 5 : 200));
  }

  void add() {
    const size_t i = agents_.size();
    std::string error;
    auto spec = agent::make_tunnel(args_.prefix + "-" + std::to_string(i), args_.domain, &error);
    if (!spec) throw std::runtime_error(error);
    spec->id = 1;
    spec->upstream_port = 9;  // discard: never asked for
    agent::AgentOptions o;
    o.edge = edge_;
    o.ca_file = args_.ca;
    o.token_file = args_.token_files[i % args_.token_files.size()];
    o.tunnels.push_back(*spec);
    o.edge_transport = agent::EdgeTransport::kQuic;
    agent::AgentEvents ev;
    registered_flags_.push_back(false);
    ev.on_registered = [this, i](const agent::TunnelSpec&, const std::string&) {
      ++registered_;
      if (!registered_flags_[i]) ++registered_once_;
      registered_flags_[i] = true;
    };
    ev.on_refused = [this](const agent::TunnelSpec&, const std::string& code, const std::string& why) {
      if (refused_++ < 5) std::fprintf(stderr, "refused (%s): %s\n", code.c_str(), why.c_str());
    };
    ev.on_fatal = [](const std::string& s) { std::fprintf(stderr, "an agent gave up: %s\n", s.c_str()); };
    agents_.push_back(std::make_unique<agent::TunnelAgent>(io_, std::move(o), std::move(ev)));
    agents_.back()->start();
  }

  size_t connected() const {
    size_t n = 0;
    for (const auto& a : agents_) n += a->connected() ? 1 : 0;
    return n;
  }
  uint64_t sessions_opened() const {
    uint64_t n = 0;
    for (const auto& a : agents_) n += a->sessions_opened();
    return n;
  }

  asio::io_context& io_;
  Args args_;
  agent::EdgeUrl edge_;
  asio::steady_timer tick_;
  std::vector<std::unique_ptr<agent::TunnelAgent>> agents_;
  Clock::time_point started_at_;
  Clock::time_point last_report_;
  std::optional<Clock::time_point> ready_at_;
  uint64_t sessions_at_ready_ = 0;
  size_t registered_ = 0;       // REGISTERED events, re-registrations after a reconnect included
  size_t registered_once_ = 0;  // agents registered at least once
  std::vector<bool> registered_flags_;
  size_t refused_ = 0;
  bool failed_ = false;
};

}  // namespace

int main(int argc, char** argv) {
  Args a;
  CLI::App app{"Holds many idle agent sessions on an edge (bench/idle.sh)"};
  app.add_option("--edge", a.edge, "the edge's URL (https://HOST:PORT)")->required();
  app.add_option("--ca", a.ca, "the edge's CA certificate")->required();
  app.add_option("--token-file", a.token_files,
                 "a token covering PREFIX-*.DOMAIN; several: session I uses the (I mod N)th, so the "
                 "sessions spread over the tokens' subjects")
      ->required();
  app.add_option("--domain", a.domain, "the tunnels' domain")->capture_default_str();
  app.add_option("--prefix", a.prefix, "tunnel names are PREFIX-0, PREFIX-1, ...")->capture_default_str();
  app.add_option("--sessions", a.sessions, "sessions to hold")
      ->capture_default_str()
      ->check(CLI::Range(1, 100000));
  app.add_option("--rate", a.rate, "new sessions per second")
      ->capture_default_str()
      ->check(CLI::Range(1.0, 10000.0));
  app.add_option("--hold", a.hold_s, "seconds to hold once ready (0: until SIGINT/SIGTERM)")
      ->capture_default_str();
  app.add_option("--report", a.report_s, "seconds between reports once ready")
      ->capture_default_str()
      ->check(CLI::Range(1, 3600));
  app.add_option("--ready-timeout", a.ready_timeout_s, "give up when not every tunnel is registered by then")
      ->capture_default_str();
  CLI11_PARSE(app, argc, argv);
  spdlog::set_level(spdlog::level::warn);

  // One UDP socket per session, plus the process's own.
  rlimit files{};
  if (getrlimit(RLIMIT_NOFILE, &files) == 0 && files.rlim_cur < files.rlim_max) {
    files.rlim_cur = files.rlim_max;
    setrlimit(RLIMIT_NOFILE, &files);
  }
  if (getrlimit(RLIMIT_NOFILE, &files) == 0 && files.rlim_cur < a.sessions + 64) {
    std::fprintf(stderr, "idle_agents: %zu sessions need %zu open files; ulimit -n allows %llu\n", a.sessions,
                 a.sessions + 64, static_cast<unsigned long long>(files.rlim_cur));
    return 2;
  }

  asio::io_context io(1);
  Fleet fleet(io, a);
  std::string error;
  if (!fleet.start(&error)) {
    std::fprintf(stderr, "idle_agents: --edge: %s\n", error.c_str());
    return 2;
  }
  asio::signal_set signals(io, SIGINT, SIGTERM);
  signals.async_wait([&](const boost::system::error_code& ec, int) {
    if (ec) return;
    fleet.stop();
    auto t = std::make_shared<asio::steady_timer>(io, std::chrono::milliseconds(500));
    t->async_wait([&io, t](const boost::system::error_code&) { io.stop(); });
  });
  io.run();
  return fleet.failed() ? 1 : 0;
}
