// A minimal edge for the agent's integration tests, built from wt::H3Server and tunnel/wire.h: it
// checks the Bearer token and protocol version, answers REGISTER (or refuses as told) with the typed
// control messages (tunnel/control.h), keeps the shared tunnel::Heartbeat (PINGs, PONGs, timeout), and
// lets the test open request streams on the agent's session and read the responses. Runs on the
// test's io_context (one thread, like the real edge).
#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <filesystem>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "common/varint.h"
#include "h3/connection.h"
#include "h3/error_codes.h"
#include "quic/certs.h"
#include "quic/endpoint.h"
#include "quic/tls_context.h"
#include "tunnel/control.h"
#include "tunnel/heartbeat.h"
#include "tunnel/wire.h"
#include "wt/config.h"
#include "wt/h3_server.h"

namespace wtmesh::testing {

namespace asio = boost::asio;

struct EdgeRequest {
  wt::StreamId id = -1;
  tunnel::HeadReader<tunnel::ResponseHead> reader;
  std::optional<tunnel::ResponseHead> head;
  std::string body;  // kept up to 1 MiB
  uint64_t body_bytes = 0;
  bool fin = false;
  std::optional<uint32_t> reset;
  bool stopped = false;
  std::vector<uint8_t> to_send;  // request bytes not yet taken by the stream
  uint64_t upload_left = 0;      // generated request body still to send
  bool send_fin = true;
  bool fin_sent = false;
  std::chrono::steady_clock::time_point first_body_at{};
};

class FakeAgentSession final : public wt::SessionHandler {
 public:
  struct Config {
    std::set<std::string> refuse_not_covered;
    int refuse_taken_times = 0;  // answer `taken` to this many REGISTERs first
    bool answer_pings = true;    // false: a dead edge that reads nothing and says nothing
    std::chrono::milliseconds ping_interval = tunnel::Heartbeat::kDefaultInterval;
  };
  explicit FakeAgentSession(Config config) : config_(std::move(config)) {}

  void on_attached(wt::Session& s) override { session = &s; }
  void on_ready() override { ready = true; }
  void on_incoming_stream(wt::StreamId id, bool bidi) override {
    if (!bidi || control_id) {
      session->stop_sending(id, tunnel::kStreamProtocolError);
      return;
    }
    control_id = id;
    heartbeat.emplace(config_.ping_interval, tunnel::Heartbeat::kDefaultMissedIntervals,
                      std::chrono::steady_clock::now());
  }
  void on_stream_data(wt::StreamId id, std::span<const uint8_t> data, bool fin) override {
    if (control_id && id == *control_id) {
      session->consume(id, data.size());
      if (!config_.answer_pings) return;  // a dead edge: reads nothing, says nothing
      if (!data.empty()) heartbeat->on_received(std::chrono::steady_clock::now());
      std::span<const uint8_t> in = data;
      if (!saw_kind) {
        if (in.empty()) return;
        control_kind = in[0];
        saw_kind = true;
        in = in.subspan(1);
      }
      std::vector<tunnel::ControlFrame> frames;
      if (reader.feed(in, frames) != tunnel::WireError::kNone) protocol_errors++;
      for (auto& f : frames) handle(f);
      if (fin) control_fin = true;
      return;
    }
    auto it = requests.find(id);
    if (it == requests.end()) {
      session->consume(id, data.size());
      return;
    }
    EdgeRequest& r = it->second;
    session->consume(id, data.size());
    std::span<const uint8_t> in = data;
    if (!r.head) {
      tunnel::ResponseHead h;
      const auto e = r.reader.feed(in, h);
      if (e == tunnel::WireError::kNeedMore) return;
      if (e != tunnel::WireError::kNone) {
        protocol_errors++;
        return;
      }
      r.head = std::move(h);
      auto rest = r.reader.take_body();
      add_body(r, rest);
    } else {
      add_body(r, in);
    }
    if (fin) r.fin = true;
  }
  void on_stream_reset(wt::StreamId id, std::optional<uint32_t> code) override {
    if (auto it = requests.find(id); it != requests.end()) it->second.reset = code.value_or(9999);
  }
  void on_stop_sending(wt::StreamId id, std::optional<uint32_t>) override {
    if (auto it = requests.find(id); it != requests.end()) {
      it->second.stopped = true;
      it->second.to_send.clear();
      it->second.upload_left = 0;
    }
  }
  void on_stream_writable(wt::StreamId id) override { pump(id); }
  void on_datagram(std::span<const uint8_t>) override {}
  void on_closed(uint32_t code, std::string_view reason) override {
    closed = true;
    close_code = code;
    close_reason = std::string(reason);
    session = nullptr;
  }

  // Opens a request stream for `head`; `upload` generated body bytes follow (or `body`).
  wt::StreamId request(tunnel::RequestHead head, std::string body = {}, uint64_t upload = 0,
                       bool fin = true) {
    auto id = session->open_bidi_stream();
    if (!id) return -1;
    EdgeRequest& r = requests[*id];
    r.id = *id;
    r.to_send = tunnel::encode_request_open(head);
    r.to_send.insert(r.to_send.end(), body.begin(), body.end());
    r.upload_left = upload;
    r.send_fin = fin;
    pump(*id);
    return *id;
  }
  void send_more(wt::StreamId id, std::string_view more, bool fin) {
    EdgeRequest& r = requests[id];
    r.to_send.insert(r.to_send.end(), more.begin(), more.end());
    r.send_fin = fin;
    pump(id);
  }
  void pump(wt::StreamId id) {
    auto it = requests.find(id);
    if (it == requests.end() || !session) return;
    EdgeRequest& r = it->second;
    for (;;) {
      if (r.to_send.empty() && r.upload_left > 0) {
        const size_t n = static_cast<size_t>(std::min<uint64_t>(r.upload_left, 64 * 1024));
        r.to_send.assign(n, 'u');
        r.upload_left -= n;
      }
      if (r.to_send.empty()) {
        if (r.send_fin && !r.fin_sent && !r.stopped) {
          session->write(id, {}, true);
          r.fin_sent = true;
        }
        return;
      }
      const bool last = r.upload_left == 0 && r.send_fin;
      const size_t n = session->write(id, r.to_send, last);
      r.to_send.erase(r.to_send.begin(), r.to_send.begin() + static_cast<std::ptrdiff_t>(n));
      if (!r.to_send.empty()) return;
      if (last) {
        r.fin_sent = true;
        return;
      }
    }
  }

  void send_control(const tunnel::ControlMessage& m) {
    const auto bytes = tunnel::encode(m);
    session->write(*control_id, bytes, false);
  }
  // The edge's heartbeat: FakeEdge calls this every 100 ms at most.
  void on_tick(std::chrono::steady_clock::time_point now) {
    if (!session || !heartbeat || !config_.answer_pings) return;
    const tunnel::HeartbeatTick t = heartbeat->on_tick(now);
    if (t.timed_out) {
      session->close(tunnel::kCloseHeartbeatTimeout, "no heartbeat from the agent");
      return;
    }
    if (t.ping) {
      send_control(*t.ping);
      ++pings_sent;
    }
  }

  wt::Session* session = nullptr;
  bool ready = false, closed = false;
  uint32_t close_code = 0;
  std::string close_reason;
  std::optional<wt::StreamId> control_id;
  bool saw_kind = false, control_fin = false;
  uint8_t control_kind = 0xff;
  tunnel::ControlReader reader;
  std::optional<tunnel::Heartbeat> heartbeat;  // from the control stream on
  std::map<uint32_t, std::string> registered;  // id -> hostname
  std::vector<std::string> register_log;       // hostnames, in REGISTER order
  int pings = 0, protocol_errors = 0;          // PINGs from the agent; bad bytes
  int pings_sent = 0, pongs = 0;               // the edge's own PINGs, and the agent's answers
  std::map<wt::StreamId, EdgeRequest> requests;
  uint16_t port = 0;

 private:
  static void add_body(EdgeRequest& r, std::span<const uint8_t> b) {
    if (b.empty()) return;
    if (r.body_bytes == 0) r.first_body_at = std::chrono::steady_clock::now();
    r.body_bytes += b.size();
    if (r.body.size() < (1u << 20)) r.body.append(reinterpret_cast<const char*>(b.data()), b.size());
  }
  void handle(const tunnel::ControlFrame& f) {
    const tunnel::ControlDecode d = tunnel::decode(f);
    if (!d) {
      protocol_errors++;
      return;
    }
    if (const auto* reg = d.get<tunnel::Register>()) {
      const std::string& host = reg->hostname;
      register_log.push_back(host);
      if (config_.refuse_not_covered.count(host)) {
        send_control(tunnel::Refused{reg->id, host, std::string(tunnel::refusal::kNotCovered),
                                     "The token does not cover " + host + "."});
      } else if (config_.refuse_taken_times > 0) {
        --config_.refuse_taken_times;
        send_control(
            tunnel::Refused{reg->id, host, std::string(tunnel::refusal::kTaken), host + " is in use."});
      } else {
        registered[reg->id] = host;
        send_control(tunnel::Registered{reg->id, host, "https://" + host + ":" + std::to_string(port) + "/"});
      }
    } else if (const auto* ping = d.get<tunnel::Ping>()) {
      ++pings;
      send_control(tunnel::Pong{ping->seq});
    } else if (const auto* pong = d.get<tunnel::Pong>()) {
      ++pongs;
      heartbeat->on_pong(*pong, std::chrono::steady_clock::now());
    }
  }
  Config config_;
};

class FakeEdge {
 public:
  struct Options {
    std::string token = "good-token";
    std::string forbidden_token = "no-hosts-token";
    FakeAgentSession::Config session;
  };

  FakeEdge(asio::io_context& io, const std::filesystem::path& dir, Options options)
      : io_(io), options_(std::move(options)) {
    certs_ = quic::ensure_state_certs(dir, {"localhost", "*.localhost"});
    endpoint_.emplace(io_, asio::ip::udp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
    quic::ServerOptions so;
    so.tls =
        std::make_shared<quic::TlsServerContext>(quic::TlsServerContext::from_files(certs_.cert, certs_.key));
    so.on_connection = [this](quic::Connection& c) {
      auto app = std::make_unique<ConnApp>(io_, c, *this);
      apps_.push_back(app.get());
      app->arm_tick();
      c.set_app_state(std::move(app));
    };
    endpoint_->set_on_removed(
        [this](quic::Connection& c) { std::erase_if(apps_, [&](ConnApp* a) { return &a->quic == &c; }); });
    endpoint_->listen(std::move(so));
  }
  ~FakeEdge() { endpoint_.reset(); }

  uint16_t port() const { return endpoint_->local_endpoint().port(); }
  std::filesystem::path ca() const { return certs_.ca_cert; }
  // The most recent agent session (nullptr before the first).
  FakeAgentSession* last() { return sessions_.empty() ? nullptr : sessions_.back().get(); }
  size_t sessions() const { return sessions_.size(); }
  FakeAgentSession* session(size_t i) { return sessions_.at(i).get(); }
  const std::vector<int>& statuses() const { return statuses_; }
  // Abruptly closes every QUIC connection (the agent sees its session die).
  void close_connections() {
    for (ConnApp* a : apps_) a->h3.close(h3::kH3NoError, "fake edge closing");
  }
  Options& options() { return options_; }

 private:
  struct ConnApp final : quic::Connection::AppState {
    ConnApp(asio::io_context& io, quic::Connection& q, FakeEdge& edge)
        : edge(edge),
          quic(q),
          h3(q, h3::Role::kServer, wt::webtransport_h3_config(h3::Role::kServer)),
          server(h3, wt::ServerConfig{}, [&edge](const wt::SessionInfo& info) { return edge.accept(info); }),
          tick(io) {
      q.set_handler(&h3);
    }
    void arm_tick() {
      const auto now = std::chrono::steady_clock::now();
      auto when = now + std::chrono::milliseconds(100);
      if (auto d = server.next_deadline()) when = std::min(when, std::max(*d, now));
      tick.expires_at(when);
      tick.async_wait([this, alive = std::weak_ptr<int>(alive)](const boost::system::error_code& ec) {
        if (ec || alive.expired()) return;
        const auto t = std::chrono::steady_clock::now();
        server.on_tick(t);
        edge.tick_sessions(t);
        arm_tick();
      });
    }
    FakeEdge& edge;
    quic::Connection& quic;
    h3::Connection h3;
    wt::H3Server server;
    asio::steady_timer tick;
    std::shared_ptr<int> alive = std::make_shared<int>(0);
  };

  void tick_sessions(std::chrono::steady_clock::time_point now) {
    for (auto& s : sessions_) s->on_tick(now);
  }

  wt::Accept accept(const wt::SessionInfo& info) {
    auto header = [&](std::string_view name) -> std::string {
      for (const auto& [n, v] : info.headers) {
        if (n == name) return v;
      }
      return {};
    };
    int status = 200;
    wt::HeaderPairs extra;
    if (info.path != tunnel::kSessionPath) {
      status = 404;
    } else if (header("authorization") == "Bearer " + options_.forbidden_token) {
      status = 403;
    } else if (header("authorization") != "Bearer " + options_.token) {
      status = 401;
    } else if (header(tunnel::kProtocolHeader) != "1") {
      status = 400;
      extra.push_back({std::string(tunnel::kErrorHeader), "unsupported protocol version"});
    }
    statuses_.push_back(status);
    if (status != 200) return {status, nullptr, extra};
    sessions_.push_back(std::make_unique<FakeAgentSession>(options_.session));
    sessions_.back()->port = port();
    return {200, sessions_.back().get(), {{std::string(tunnel::kProtocolHeader), "1"}}};
  }

  asio::io_context& io_;
  Options options_;
  quic::CertFiles certs_;
  // Handlers outlive the endpoint (and so every session that reports to them).
  std::vector<std::unique_ptr<FakeAgentSession>> sessions_;
  std::vector<ConnApp*> apps_;
  std::vector<int> statuses_;
  std::optional<quic::Endpoint> endpoint_;
};

}  // namespace wtmesh::testing
