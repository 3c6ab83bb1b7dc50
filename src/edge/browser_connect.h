// Browsers as mesh clients (docs/protocol.md §8): a page opens
//   new WebTransport("https://EDGE:PORT/connect/NAME?token=TOKEN")
// and each bidi stream it opens is one TCP connection to NAME, bridged (edge/tcp_bridge.h) by
// ConnectBridges exactly as an agent's connect stream is: onto NAME's `tcp` tunnel (any agent's, public
// or private) or an edge route. Each datagram is one UDP packet to NAME's `udp` tunnel; its answers
// come back as datagrams. Unidirectional streams from the page carry telemetry reports
// (edge/browser_telemetry.h), shown in /metrics beside the agents'.
//
// The session is accepted only for a verified token whose `connect` claim covers NAME and a name the
// edge can reach now; otherwise the CONNECT is answered with an HTTP status (edge/browser_connect_path.h:
// 400, 401, 403, 404, 503) and a wtmesh-error header. The Origin was checked before (wt::H3Server,
// the edge's --allow-origin). A stream that cannot be bridged later (the name went offline, its
// agent's session has no stream to spare, this session holds max_streams) is reset with
// stream_code_of(status); a bridge that aborts resets the stream with kBrowserStreamAborted. Past
// the token's expiry the session is closed (kBrowserCloseTokenExpired). The token is never logged.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "edge/browser_connect_path.h"
#include "edge/browser_telemetry.h"
#include "edge/connect_bridges.h"
#include "edge/tcp_bridge.h"
#include "edge/udp_connects.h"
#include "wt/session.h"

namespace wtmesh::edge {

class TunnelService;

struct BrowserConnectOptions {
  std::string domain = "localhost";
  size_t max_streams = 100;        // bidi streams (connections) one session holds at once
  EdgeMetrics* metrics = nullptr;  // counts the pages' telemetry reports (may be null)
};

// The streams of one browser session as the ends of their bridges see them: a shared record that
// outlives the session (set to null when it closes) so that a bridge never reaches a dead session.
struct BrowserLink;

// A browser's bidi stream as one end of a TcpBridge; also the ConnectClient while the name is being
// reached (refused with a reset code).
class WtStreamEnd final : public BridgeEnd {
 public:
  WtStreamEnd(std::shared_ptr<BrowserLink> link, wt::StreamId id);
  ~WtStreamEnd() override;

  bool failed() const { return failed_ || done_; }
  // RESET_STREAM + STOP_SENDING with `code`; lets go.
  void refuse(uint32_t code);

  // --- BridgeEnd ---
  void attach(std::weak_ptr<Sink> sink) override;
  void read() override;
  void release() override;
  void write(std::span<const uint8_t> data) override;
  void shutdown() override;
  void reset() override;
  void close() override;

  // --- from the session ---
  void on_data(std::span<const uint8_t> data, bool fin);
  void on_writable() { flush(); }
  void on_failed();

 private:
  wt::Session* session() const;
  void deliver();
  void flush();
  void abandon(uint32_t code);

  std::shared_ptr<BrowserLink> link_;
  wt::StreamId id_;
  std::weak_ptr<Sink> sink_;
  std::span<const uint8_t> pending_;
  bool writing_ = false;
  StreamInbox inbox_;
  bool fin_due_ = false, fin_sent_ = false;
  bool failed_ = false, done_ = false;
};

// One accepted /connect/NAME session. Its datagrams are one flow of NAME's `udp` tunnel (UdpConnects),
// opened at the first datagram; while it opens, up to kMaxHeldDatagrams (kMaxHeldBytes) wait, more
// are dropped. A refused open is retried by a datagram kRetryAfter later at the earliest; an ended
// flow (idle, tunnel gone) is opened again by the next datagram.
class BrowserSession final : public wt::SessionHandler, public UdpConnectEvents {
 public:
  static constexpr size_t kMaxHeldDatagrams = 16;
  static constexpr size_t kMaxHeldBytes = 32 * 1024;
  static constexpr std::chrono::seconds kRetryAfter{1};

  // `telemetry` null: uni streams are refused.
  BrowserSession(ConnectBridges& bridges, UdpConnects* udp, std::string name, std::string subject,
                 std::chrono::system_clock::time_point expires, size_t max_streams,
                 std::shared_ptr<BrowserTelemetry> telemetry = nullptr);
  ~BrowserSession() override;

  bool closed() const { return closed_; }
  size_t stream_count() const;
  // Closes the session once the token has expired (the connection's tick calls it).
  void on_tick(std::chrono::system_clock::time_point now);

  void on_attached(wt::Session& session) override;
  void on_incoming_stream(wt::StreamId id, bool bidi) override;
  void on_stream_data(wt::StreamId id, std::span<const uint8_t> data, bool fin) override;
  void on_stream_reset(wt::StreamId id, std::optional<uint32_t> code) override;
  void on_stop_sending(wt::StreamId id, std::optional<uint32_t> code) override;
  void on_stream_writable(wt::StreamId id) override;
  void on_stream_closed(wt::StreamId id) override;
  void on_datagram(std::span<const uint8_t> payload) override;
  void on_closed(uint32_t code, std::string_view reason) override;

  // --- UdpConnectEvents ---
  void on_udp_open(tunnel::ConnectStatus status, std::string_view message) override;
  void on_udp_packet(std::span<const uint8_t> payload) override;
  void on_udp_end(std::string_view why) override;

  size_t held_datagrams() const { return held_.size(); }
  size_t telemetry_streams() const { return reports_.count(); }
  uint64_t dropped_datagrams() const { return dropped_; }

 private:
  void send_udp(std::span<const uint8_t> payload);

  ConnectBridges& bridges_;
  UdpConnects* udp_;
  UdpConnects::Handle udp_handle_ = 0;
  bool udp_open_ = false;
  std::optional<std::chrono::steady_clock::time_point> udp_refused_at_;
  std::vector<std::vector<uint8_t>> held_;  // datagrams waiting for the flow to open
  size_t held_bytes_ = 0;
  uint64_t dropped_ = 0;  // datagrams from the page that went nowhere
  std::string name_, subject_;
  std::chrono::system_clock::time_point expires_;
  size_t max_streams_;
  std::shared_ptr<BrowserLink> link_;
  std::shared_ptr<BrowserTelemetry> telemetry_;
  uint64_t telemetry_key_ = 0;
  TelemetryStreams reports_;
  bool closed_ = false;
};

// The acceptor for kConnectPathPrefix: checks the path, the token, its scope and the name.
class BrowserConnect {
 public:
  // `udp` null: an edge without UDP tunnels (datagrams are dropped). `directory` answers whether the
  // name is a tunnel (the TunnelService alone; among workers their WorkerDirectory, whose bridges then
  // reach a tunnel on any worker); `tunnels` verifies tokens.
  BrowserConnect(TunnelService& tunnels, TunnelDirectory& directory, ConnectBridges& bridges,
                 UdpConnects* udp, BrowserConnectOptions options);

  // A refusal (status >= 300, handler null), or an accepted session's handler, owned by `sessions`
  // (finished ones are dropped from it first).
  wt::Accept accept(const wt::SessionInfo& info, std::vector<std::unique_ptr<BrowserSession>>& sessions);
  // The live sessions' latest telemetry reports (for /metrics).
  std::vector<AgentTelemetry> telemetry(SteadyTime now) const { return telemetry_->snapshot(now); }

 private:
  TunnelService& tunnels_;
  TunnelDirectory& directory_;
  ConnectBridges& bridges_;
  UdpConnects* udp_;
  BrowserConnectOptions options_;
  std::shared_ptr<BrowserTelemetry> telemetry_;
};

}  // namespace wtmesh::edge
