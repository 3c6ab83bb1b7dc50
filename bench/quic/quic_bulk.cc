// Bulk-transfer driver for the QUIC layer: a quic::Endpoint client and a quic::Endpoint server on
// 127.0.0.1, each on its own thread and io_context (like two processes), moving N MiB over one
// stream. Reports wall-clock throughput and CPU per MiB for each side, measured with
// getrusage(RUSAGE_THREAD) from inside each thread, so the figure is stable on a noisy box.
//
//   quic_bulk [--mode up|echo] [--mib N] [--payload BYTES] [--no-gso] [--no-gro] [--pin] [--runs K]
//     up:   client → server, the server consumes and discards (one direction).
//     echo: client → server → client on the same bidi stream (the loopback test's workload).
//     --payload sets TransportLimits::max_udp_payload on both sides (0 = library default).
//     --no-gso / --no-gro switch the offloads off on both sockets (ablation).
// Output: one line per run, then the median line (by client+server CPU per MiB).
#include <pthread.h>
#include <sched.h>
#include <sys/resource.h>

#include <algorithm>
#include <atomic>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <memory>
#include <optional>
#include <random>
#include <span>
#include <string>
#include <thread>
#include <vector>

#include "quic/certs.h"
#include "quic/endpoint.h"
#include "quic/tls_context.h"

namespace {

namespace asio = boost::asio;
using asio::ip::udp;
using wtmesh::quic::Connection;
using wtmesh::quic::StreamId;
using wtmesh::quic::Transport;
using wtmesh::quic::TransportHandler;
using wtmesh::quic::TransportLimits;
using Clock = std::chrono::steady_clock;

struct Options {
  std::string mode = "up";
  size_t mib = 256;
  size_t payload = 0;
  bool pin = false;
  bool no_gso = false;
  bool no_gro = false;
  int runs = 1;
};

struct CpuSample {
  double user_ms = 0, sys_ms = 0;
  double total() const { return user_ms + sys_ms; }
};

CpuSample thread_cpu() {
  rusage ru{};
  getrusage(RUSAGE_THREAD, &ru);
  auto ms = [](const timeval& tv) { return tv.tv_sec * 1e3 + tv.tv_usec / 1e3; };
  return {ms(ru.ru_utime), ms(ru.ru_stime)};
}

CpuSample operator-(const CpuSample& a, const CpuSample& b) {
  return {a.user_ms - b.user_ms, a.sys_ms - b.sys_ms};
}

void pin_to(int cpu) {
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(cpu, &set);
  pthread_setaffinity_np(pthread_self(), sizeof(set), &set);
}

// Server: discards (up) or echoes (echo) stream bytes; its CPU is counted from the first stream byte
// to the end of its thread (which stops right after the client is done); consumes only what it has written
// back, so flow control is the backpressure, as in tests/integration/quic_loopback_test.cc.
class ServerHandler final : public TransportHandler, public Connection::AppState {
 public:
  ServerHandler(Transport& t, bool echo, std::atomic<bool>& done, CpuSample& cpu_at_first)
      : t_(t), echo_(echo), done_(done), first_(cpu_at_first) {}

  void on_stream_data(StreamId id, std::span<const uint8_t> data, bool fin) override {
    if (!started_) {
      started_ = true;
      first_ = thread_cpu();
    }
    if (!echo_) {
      t_.consume(id, data.size());
      if (fin) done_.store(true);
      return;
    }
    id_ = id;
    pending_.insert(pending_.end(), data.begin(), data.end());
    fin_ = fin_ || fin;
    pump();
  }
  void on_stream_writable(StreamId) override { pump(); }
  void on_stream_reset(StreamId, uint64_t) override {}
  void on_stop_sending(StreamId, uint64_t) override {}
  void on_stream_closed(StreamId) override {}
  void on_datagram(std::span<const uint8_t>) override {}
  void on_connection_closed(uint64_t, bool, std::string_view) override {}

 private:
  void pump() {
    const std::span<const uint8_t> rest(pending_.data() + head_, pending_.size() - head_);
    const size_t n = t_.write(id_, rest, fin_);
    t_.consume(id_, n);
    head_ += n;
    if (head_ == pending_.size()) {
      pending_.clear();
      head_ = 0;
    } else if (head_ > (1u << 20)) {
      pending_.erase(pending_.begin(), pending_.begin() + static_cast<long>(head_));
      head_ = 0;
    }
  }

  Transport& t_;
  bool echo_;
  std::atomic<bool>& done_;
  CpuSample& first_;
  bool started_ = false;
  StreamId id_ = -1;
  std::vector<uint8_t> pending_;
  size_t head_ = 0;
  bool fin_ = false;
};

class ClientHandler final : public TransportHandler {
 public:
  // Declared before the endpoints, so it outlives the connection that calls it.
  explicit ClientHandler(size_t total) : total_(total) {
    block_.resize(1 << 20);
    for (size_t i = 0; i < block_.size(); ++i) block_[i] = static_cast<uint8_t>(i * 31 + 7);
  }
  void attach(Connection& c) {
    c_ = &c;
    c.set_handler(this);
  }
  void on_handshake_completed() override {
    start_cpu = thread_cpu();
    start_wall = Clock::now();
    id_ = *c_->open_bidi_stream();
    pump();
  }
  void on_stream_data(StreamId id, std::span<const uint8_t> data, bool fin) override {
    received += data.size();
    c_->consume(id, data.size());
    if (fin) {
      end_cpu = thread_cpu();
      end_wall = Clock::now();
      finished = true;
    }
  }
  void on_stream_writable(StreamId) override { pump(); }
  void on_stream_reset(StreamId, uint64_t) override {}
  void on_stop_sending(StreamId, uint64_t) override {}
  void on_stream_closed(StreamId) override {}
  void on_datagram(std::span<const uint8_t>) override {}
  void on_connection_closed(uint64_t, bool, std::string_view reason) override {
    if (!finished)
      std::fprintf(stderr, "client connection closed early: %.*s\n", int(reason.size()), reason.data());
    closed = true;
  }

  CpuSample start_cpu, end_cpu;
  Clock::time_point start_wall, end_wall;
  size_t received = 0;
  bool finished = false;
  bool closed = false;

 private:
  void pump() {
    while (sent_ < total_) {
      const size_t off = sent_ % block_.size();
      const size_t len = std::min(block_.size() - off, total_ - sent_);
      const bool last = sent_ + len == total_;
      const size_t n = c_->write(id_, std::span<const uint8_t>(block_).subspan(off, len), last);
      sent_ += n;
      if (n < len) return;
    }
  }
  Connection* c_ = nullptr;
  size_t total_;
  std::vector<uint8_t> block_;
  StreamId id_ = -1;
  size_t sent_ = 0;
};

struct Result {
  double wall_s = 0;
  CpuSample client, server;
  double mib = 0;
  // Socket system calls per MiB (new code only): client sendmsg, server recvmmsg.
  double client_sends = -1, server_recvs = -1;
};

TransportLimits limits_for(const Options& o) {
  TransportLimits l;
#ifdef WTMESH_BENCH_NEW_API
  if (o.payload) l.max_udp_payload = o.payload;
#else
  (void)o;
#endif
  return l;
}

Result run_once(const Options& o, const wtmesh::quic::CertFiles& files) {
  const bool echo = o.mode == "echo";
  const size_t total = o.mib << 20;
  auto server_tls = std::make_shared<wtmesh::quic::TlsServerContext>(
      wtmesh::quic::TlsServerContext::from_files(files.cert, files.key));
  auto client_tls = wtmesh::quic::TlsClientContext::with_ca_file(files.ca_cert);

  asio::io_context server_io(1), client_io(1);
  ClientHandler ch(total);
  std::atomic<bool> server_done{false};
  CpuSample server_first, server_end;  // server CPU: first stream byte → thread exit
  wtmesh::quic::Endpoint server(server_io, udp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
  wtmesh::quic::ServerOptions so;
  so.tls = server_tls;
  so.limits = limits_for(o);
  so.on_connection = [&](Connection& c) {
    auto h = std::make_unique<ServerHandler>(c, echo, server_done, server_first);
    c.set_handler(h.get());
    c.set_app_state(std::move(h));
  };
  server.listen(so);

  wtmesh::quic::Endpoint client(client_io, udp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
#ifdef WTMESH_BENCH_NEW_API
  for (auto* ep : {&server, &client}) {
    if (o.no_gso) ep->socket_io().disable_gso();
    if (o.no_gro) ep->socket_io().disable_gro();
  }
#endif
  std::string error;
  Connection* conn = client.connect(server.local_endpoint(), "localhost", client_tls, limits_for(o), &error);
  if (!conn) {
    std::fprintf(stderr, "connect: %s\n", error.c_str());
    std::exit(1);
  }
  ch.attach(*conn);

  std::atomic<bool> stop{false};
  std::thread st([&] {
    if (o.pin) pin_to(0);
    while (!stop.load()) {
      server_io.run_for(std::chrono::milliseconds(20));
      server_io.restart();
    }
    server_end = thread_cpu();
  });
  if (o.pin) pin_to(1);
  const auto deadline = Clock::now() + std::chrono::seconds(300);
  for (;;) {
    client_io.run_for(std::chrono::milliseconds(20));
    client_io.restart();
    if (echo && (ch.finished || ch.closed)) break;
    if (!echo && (server_done.load() || ch.closed)) {
      ch.end_cpu = thread_cpu();
      ch.end_wall = Clock::now();
      break;
    }
    if (Clock::now() > deadline) {
      std::fprintf(stderr, "timeout: sent stream, received %zu\n", ch.received);
      std::exit(1);
    }
  }
  stop.store(true);
  st.join();
  if (ch.closed && !ch.finished && echo) std::exit(1);
  ch.finished = true;  // the endpoints' teardown below closes the connection: not an early close
  if (echo && ch.received != total) {
    std::fprintf(stderr, "echo received %zu of %zu bytes\n", ch.received, total);
    std::exit(1);
  }
  Result r;
  r.mib = static_cast<double>(o.mib);
  r.wall_s = std::chrono::duration<double>(ch.end_wall - ch.start_wall).count();
  r.client = ch.end_cpu - ch.start_cpu;
  r.server = server_end - server_first;
#ifdef WTMESH_BENCH_NEW_API
  r.client_sends = static_cast<double>(client.socket_io().stats().send_calls) / r.mib;
  r.server_recvs = static_cast<double>(server.socket_io().stats().recv_calls) / r.mib;
#endif
  // The client's wall clock in up mode ends when it sees the server's flag (up to one loop turn late);
  // good enough next to multi-second runs.
  return r;
}

void print(const char* tag, const Options& o, const Result& r) {
  const double mb = r.mib * 1.048576;
  std::printf(
      "%-6s mode=%s mib=%zu payload=%zu%s%s  %7.1f MB/s  client %5.2f CPU-ms/MiB (usr %4.2f sys %4.2f)  "
      "server %5.2f CPU-ms/MiB (usr %4.2f sys %4.2f)  total %5.2f",
      tag, o.mode.c_str(), o.mib, o.payload, o.no_gso ? " no-gso" : "", o.no_gro ? " no-gro" : "",
      mb / r.wall_s, r.client.total() / r.mib, r.client.user_ms / r.mib, r.client.sys_ms / r.mib,
      r.server.total() / r.mib, r.server.user_ms / r.mib, r.server.sys_ms / r.mib,
      (r.client.total() + r.server.total()) / r.mib);
  if (r.client_sends >= 0)
    std::printf("  sendmsg/MiB %.0f recvmmsg/MiB %.0f", r.client_sends, r.server_recvs);
  std::printf("\n");
  std::fflush(stdout);
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto next = [&]() -> std::string {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "%s needs a value\n", a.c_str());
        std::exit(2);
      }
      return argv[++i];
    };
    if (a == "--mode") {
      o.mode = next();
    } else if (a == "--mib") {
      o.mib = std::stoul(next());
    } else if (a == "--payload") {
      o.payload = std::stoul(next());
    } else if (a == "--pin") {
      o.pin = true;
    } else if (a == "--no-gso") {
      o.no_gso = true;
    } else if (a == "--no-gro") {
      o.no_gro = true;
    } else if (a == "--runs") {
      o.runs = std::stoi(next());
    } else {
      std::fprintf(
          stderr,
          "usage: %s [--mode up|echo] [--mib N] [--payload BYTES] [--no-gso] [--no-gro] [--pin] [--runs K]\n",
          argv[0]);
      return 2;
    }
  }
  if (o.mode != "up" && o.mode != "echo") {
    std::fprintf(stderr, "--mode must be up or echo\n");
    return 2;
  }
  const auto dir =
      std::filesystem::temp_directory_path() / ("wtmesh-quic-bench-" + std::to_string(::getpid()));
  const auto files = wtmesh::quic::ensure_state_certs(dir);
  std::vector<Result> results;
  for (int i = 0; i < o.runs; ++i) {
    results.push_back(run_once(o, files));
    print("run", o, results.back());
  }
  std::filesystem::remove_all(dir);
  if (o.runs > 1) {
    std::sort(results.begin(), results.end(), [](const Result& a, const Result& b) {
      return a.client.total() + a.server.total() < b.client.total() + b.server.total();
    });
    print("median", o, results[results.size() / 2]);
  }
  return 0;
}
