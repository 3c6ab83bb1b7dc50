// EdgeSession: one tunnel WebTransport session to the edge, agent side (docs/protocol.md §2-4; the
// edge's counterpart is edge::AgentSession): the wt::SessionHandler that opens the control stream
// once the edge accepted the session, registers the tunnels, keeps the heartbeat, and turns every
// edge-opened request stream into an UpstreamExchange toward the tunnel's local service. Reconnecting is not
// its business: TunnelAgent makes a new one per session.
#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "agent/counting_session.h"
#include "agent/h2_upstream_driver.h"
#include "agent/tcp_stream_driver.h"
#include "agent/tunnel_control.h"
#include "agent/udp_connect_stream.h"
#include "agent/udp_flows.h"
#include "agent/upstream_driver.h"
#include "agent/upstream_pool.h"
#include "agent/upstream_select.h"
#include "agent/wt_relay.h"
#include "tunnel/registry.h"
#include "tunnel/telemetry.h"
#include "tunnel/wire.h"
#include "wt/session.h"

namespace wtmesh::agent {

struct TunnelRoute {
  TunnelRegistration registration;
  UpstreamPool* pool = nullptr;          // not owned; outlives the session
  MuxUpstreamClient* mux = nullptr;      // set: requests go over HTTP/2 (h2c) or HTTP/3 (h3); not owned
  UpstreamSelector* select = nullptr;    // set: TLS, ALPN picks HTTP/2 or HTTP/1.1; not owned
  const H3UpstreamTarget* wt = nullptr;  // set: WebTransport sessions are relayed there (§7); not owned
  std::optional<TcpTarget> tcp;          // set: a tcp tunnel; its streams are tcp-streams (kind 0x04)
  std::optional<UdpTarget> udp;          // set: a udp tunnel; its flows are datagrams (§4.4)
};

// Renewal of the session's token inside the live session (docs/protocol.md §3.3): sessions opened with
// a credential's session token send a RENEW with a fresh one `every` after the last was minted.
struct TokenRenewal {
  std::function<std::string()> mint;   // a fresh session token; throws std::exception when it cannot
  std::chrono::milliseconds every{0};  // 0: never renew (plain tokens)
};

class EdgeSession final : public wt::SessionHandler {
 public:
  struct Callbacks {
    // A RENEW was answered (ok: the session's expiry moved) or could not be sent; a sentence for logs.
    std::function<void(bool ok, const std::string& sentence)> on_renewed;
    std::function<void()> on_ready;                       // the edge accepted the session
    std::function<void(const ControlEvent&)> on_control;  // REGISTERED / REFUSED
    std::function<void(uint32_t tunnel_id, const ExchangeResult&)> on_request;
    std::function<void(uint32_t tunnel_id, bool clean)> on_tcp_closed;  // a tcp-stream ended
    // The edge refused a connect stream (§4.3) to `name`.
    std::function<void(const std::string& name, const tunnel::ConnectReply& reply)> on_connect_refused;
    std::function<void(uint32_t code, const std::string& reason)> on_closed;  // inside wt's on_closed
    // The edge drains (DRAIN_WEBTRANSPORT_SESSION or GOAWAY; docs/protocol.md §3.6): move to a new
    // session. Once, from inside the WebTransport layer's call.
    std::function<void()> on_drain;
    // The session became busy (true: a request, tcp stream, connect, relayed session or UDP flow
    // started) or idle (false: only the control stream and telemetry for ControlOptions::idle_after,
    // noticed at a heartbeat tick). The agent keeps a fast QUIC keep-alive only while busy.
    std::function<void(bool busy)> on_busy;
  };

  EdgeSession(boost::asio::io_context& io, std::vector<TunnelRoute> routes, ControlOptions control,
              ExchangeLimits limits, Callbacks callbacks, tunnel::UdpFlowOptions udp = {});
  ~EdgeSession() override;

  // Opens a connect stream (§4.3) to `name` for `client`, a local connection `wtmesh connect`
  // accepted; false (and the client reset) when the session is not ready or has no stream to spare.
  bool open_connect(const std::string& name, boost::asio::ip::tcp::socket client);
  // `wtmesh connect --udp` (§4.3 flag `udp`): opens a connect stream for a new flow to `name` and
  // returns the flow id it picked (odd, from 2^30; never reused in this session), or nullopt when the
  // session is not ready or has no stream to spare. `sink` hears the reply, the answers and the end.
  std::optional<uint64_t> open_udp_connect(const std::string& name, UdpConnectSink* sink);
  // Ends a flow from the agent's side: FIN on its stream, no more calls to its sink. Unknown: no-op.
  void end_udp_connect(uint64_t flow_id);
  enum class UdpSend { kSent, kTooBig, kNoRoom, kNotOpen };
  // Sends one packet on an open flow (`flow_id 0 payload`): never queued, never fragmented.
  UdpSend send_udp_connect(uint64_t flow_id, std::span<const uint8_t> payload);
  size_t udp_connect_count() const { return udp_connects_.size(); }
  // Datagrams of agent-opened flow ids that no flow here has (ended, or never opened): dropped.
  uint64_t udp_connect_unknown() const { return udp_connect_unknown_; }
  // Renews the session's token as `renewal` says (call before the session is ready).
  void set_renewal(TokenRenewal renewal) { renewal_ = std::move(renewal); }
  uint64_t renewals() const { return renewals_; }
  // Sends REGISTER for a tunnel again (after a REFUSED `taken`).
  void register_again(uint32_t tunnel_id);
  // Closes the session (close capsule); on_closed follows.
  void close(uint32_t code, const std::string& reason);
  // Sends DRAIN_WEBTRANSPORT_SESSION to the edge: after the edge's own DRAIN, it says the tunnels are
  // held by a newer session now (§3.6); the edge finishes what is under way here and closes.
  void drain();
  bool drain_received() const { return drain_received_; }
  bool ready() const { return ready_; }
  bool closed() const { return closed_; }
  size_t active_requests() const { return exchanges_.size(); }
  // Everything written on the session has reached the edge (wt::Session::delivered): closing now
  // cuts off no response whose last bytes are still buffered or unacknowledged.
  bool delivered() const { return session_ == nullptr || session_->delivered(); }
  // Anything besides the control stream and telemetry under way (see Callbacks::on_busy).
  bool busy() const;
  // Request streams whose kind or head is still arriving.
  size_t pending_heads() const { return kinds_.size() + heads_.size() + tcp_heads_.size(); }
  // The report send_telemetry() would send now (tests).
  tunnel::TelemetryReport telemetry_report() const;

  // wt::SessionHandler
  void on_attached(wt::Session& session) override {
    counted_.emplace(session);
    session_ = &*counted_;  // everything the agent sends on the session is counted
  }
  void on_ready() override;
  void on_incoming_stream(wt::StreamId id, bool bidi) override;
  void on_stream_data(wt::StreamId id, std::span<const uint8_t> data, bool fin) override;
  void on_stream_reset(wt::StreamId id, std::optional<uint32_t> code) override;
  void on_stop_sending(wt::StreamId id, std::optional<uint32_t> code) override;
  void on_stream_writable(wt::StreamId id) override;
  void on_stream_closed(wt::StreamId id) override;
  // Relayed sessions' flows (§7) and udp tunnels' flows (§4.4).
  void on_datagram(std::span<const uint8_t> payload) override;
  const UdpFlows* udp_flows() const { return udp_.get(); }
  void on_streams_available() override;
  void on_closed(uint32_t code, std::string_view reason) override;
  void on_drain() override;

 private:
  void flush_control();
  // busy() may have become true / false: tell on_busy when it changed.
  void note_busy();
  void check_idle();
  void arm_heartbeat();
  void arm_telemetry();
  // Arms the renewal timer `delay` from now; at it, mints a token and sends a RENEW.
  void arm_renewal(std::chrono::milliseconds delay);
  void send_renewal();
  void on_renewed(const ControlEvent& ev);
  // Sends one report on flow 0 (§2.2); one that does not fit or finds no room is dropped and counted.
  void send_telemetry();
  void control_failed();
  void refuse_stream(wt::StreamId id, const std::string& why);
  void start_exchange(wt::StreamId id, tunnel::RequestHead head, std::vector<uint8_t> body, bool fin);
  // A tcp-stream's head (after its kind); then its TcpStreamDriver.
  void on_tcp_head_data(wt::StreamId id, std::span<const uint8_t> data, bool fin);
  // Called from inside the exchange's own code: removed on the next turn of the loop.
  void remove_later(wt::StreamId id);
  const TunnelRoute* route(uint32_t tunnel_id) const;

  boost::asio::io_context& io_;
  std::vector<TunnelRoute> routes_;
  ControlOptions control_options_;
  ControlChannel control_;
  ExchangeLimits limits_;
  Callbacks callbacks_;
  std::optional<CountingSession> counted_;
  wt::Session* session_ = nullptr;  // &*counted_
  bool drain_received_ = false;
  std::optional<wt::StreamId> control_id_;
  bool ready_ = false;
  bool closed_ = false;
  bool busy_told_ = true;  // what on_busy last said (a session starts busy: dial, REGISTERs)
  std::chrono::steady_clock::time_point busy_seen_ = std::chrono::steady_clock::now();  // busy() last true
  std::chrono::steady_clock::time_point report_at_{};  // the latest telemetry report
  bool report_was_busy_ = true;                        // it was sent while busy() (or it is the first)
  boost::asio::steady_timer heartbeat_;
  boost::asio::steady_timer telemetry_timer_;
  boost::asio::steady_timer renew_timer_;
  TokenRenewal renewal_;
  std::chrono::steady_clock::time_point minted_at_{};       // when the RENEW in flight was minted
  uint64_t renewals_ = 0;                                   // RENEWs the edge accepted
  uint64_t bytes_received_ = 0;                             // stream and datagram payload from the edge
  uint64_t telemetry_dropped_ = 0;                          // own reports that did not fit or found no room
  std::map<wt::StreamId, tunnel::StreamKindReader> kinds_;  // edge streams whose kind is still partial
  std::map<wt::StreamId, tunnel::HeadReader<tunnel::RequestHead>> heads_;
  std::map<wt::StreamId, tunnel::TcpHeadReader> tcp_heads_;
  std::map<wt::StreamId, std::shared_ptr<UpstreamDriver>> exchanges_;
  std::unique_ptr<WtRelayHost> relays_;  // relayed WebTransport sessions (made in on_ready)
  tunnel::UdpFlowOptions udp_options_;
  std::unique_ptr<UdpFlows> udp_;  // udp tunnels' flows (made in on_ready)
  struct UdpConnectFlow {
    std::weak_ptr<UdpConnectStream> stream;
    UdpConnectSink* sink = nullptr;
  };
  std::map<uint64_t, UdpConnectFlow> udp_connects_;  // `connect --udp` flows by their (odd) flow id
  uint64_t udp_flows_opened_ = 0;                    // n of the next agent flow id (tunnel::udp_flow_id)
  uint64_t udp_connect_unknown_ = 0;                 // datagrams of agent flow ids not open here
  std::shared_ptr<int> alive_ = std::make_shared<int>(0);
};

}  // namespace wtmesh::agent
