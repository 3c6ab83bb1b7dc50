// The TunnelDirectory of one worker of a multi-worker edge (issue 15 item 3; docs/architecture.md,
// "Workers"). Each worker thread runs its own TunnelService with the agent sessions that landed on
// it, and all workers share one RouteTable, whose leases name the worker in their edge id
// ("EDGE-ID/wK", worker_edge_id). A public exchange (or a mesh bridge) runs on the worker that
// accepted its client and asks this directory:
//   - a route whose lease is held on this worker, or none, or an offline one: the local TunnelService
//     answers as it would alone (everything passes straight through);
//   - a route held by a session on worker K: the lookup is asked of worker K's TunnelService, and the
//     request stream opened there is relayed across threads (a hop).
//
// A hop is two halves that talk only by posting to each other's io_context (no shared state, no
// locks; the messages of one turn of a worker's loop go to each other worker in one post): the near half here
// (the exchange's StreamRef, its RequestStreamEvents, the request bytes in flight) and the far half on worker
// K (the real StreamRef, the request bytes the stream has not taken yet). Posts from one thread to another
// run in the order they were made, so an open comes before the writes, the writes before the FIN and a cancel
// after them all.
//   - open_request() answers kOpened at once; the far half opens the real stream, retrying kBusy and
//     kClientLimit every kOpenRetry until the open timeout (PublicLimits::open_timeout, as a public
//     exchange waits for a local session), then tells the exchange on_open_refused with the last
//     status (kGone at once): it answers 429 or 502 as it would have on this worker.
//   - Request bytes: write() takes at most kRequestWindow bytes ahead of what the real stream took
//     (send_capacity() is what is left of it); each time the real stream takes some, the near half
//     learns it and a writer that was held back hears on_request_writable().
//   - Response bytes: copied across as the agent's session delivers them; the far half's real stream
//     is never consumed until the exchange consumes what it was given, so the QUIC stream window
//     bounds the bytes in flight exactly as without workers. Bytes that arrive for an exchange
//     that has gone (cancelled, released, aborted) are consumed at once so the connection's window
//     does not shrink.
//   - Relayed WebTransport sessions (edge/wt_relay.h): add_relay() answers at once with an id from this
//     worker's block (AgentSession::kRelayIdBlock, so it cannot meet the ids the far session picks
//     for itself) and the far half registers a FarRelay under it (add_relay_as); a refusal there
//     comes back as WtRelayPeer::on_relay_refused. A stream the agent opens for the relay is a hop
//     opened from the far side (its id carries kFarOpened and the far worker); datagrams are copied
//     across, at most kMaxDatagramsInFlight posted toward a worker and not yet taken (beyond that they
//     are dropped, as a full QUIC datagram queue drops them).
//   - UDP flows of a udp tunnel (`connect --udp`, /connect datagrams: edge/udp_connects.h): the
//     directory is also the worker's UdpClientFlows. A flow of a tunnel on worker K answers kLater
//     and K opens the real flow on its UdpTunnels; the answer (and the flow's payload limit then)
//     comes back as on_udp_flow_opened. Packets are copied across like relayed datagrams (the same
//     kMaxDatagramsInFlight), and the flow's end (idle, tunnel gone) comes back as on_udp_flow_end.
//   - Visitor auth: the route's answer brings the tunnel's VisitorPolicy; the near half builds its own
//     VisitorGate from it (with this worker's VisitorEnvironment, whose challenge key all workers
//     share) and keeps it while the policy is the same (at most kMaxRemoteGates).
//
// Remote routes and hop streams are told apart from local ones by the top bit of their session
// number (TunnelService serials never reach it).
//
// Threads: every method runs on this worker's thread. The directories of all workers, and their
// io_contexts, outlive every worker's run (stop all, then destroy).
#pragma once

#include <atomic>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <tuple>
#include <unordered_map>
#include <vector>

#include "edge/route_table.h"
#include "edge/tunnel_directory.h"
#include "edge/udp_tunnels.h"
#include "edge/visitor_gate.h"
#include "tunnel/visitor_policy.h"

namespace wtmesh::edge {

// The edge id of worker `worker` of the edge `edge` in route leases, and back (nullopt when `edge_id`
// is not one of `edge`'s workers).
std::string worker_edge_id(std::string_view edge, unsigned worker);
std::optional<unsigned> worker_of(std::string_view edge_id, std::string_view edge);

class WorkerDirectory final : public TunnelDirectory, public UdpClientFlows {
 public:
  static constexpr size_t kRequestWindow = 256 * 1024;
  static constexpr std::chrono::milliseconds kOpenRetry{10};
  static constexpr std::chrono::milliseconds kDefaultOpenTimeout{1000};
  static constexpr size_t kMaxRemoteGates = 1024;
  static constexpr size_t kMaxRemoteRelays = 4096;       // this worker's relays on other workers' sessions
  static constexpr size_t kMaxRemoteUdpFlows = 16384;    // this worker's UDP flows on other workers' tunnels
  static constexpr size_t kMaxDatagramsInFlight = 1024;  // relayed datagrams posted toward one worker

  // `local`: this worker's TunnelService (or a test's directory); `routes`: the table all workers
  // share; `edge`: the edge's id (without the worker). `visitor_env`: for remote tunnels' gates.
  WorkerDirectory(boost::asio::io_context& io, unsigned index, std::string edge, TunnelDirectory& local,
                  RouteTable& routes, std::shared_ptr<VisitorEnvironment> visitor_env);
  ~WorkerDirectory() override;
  WorkerDirectory(const WorkerDirectory&) = delete;
  WorkerDirectory& operator=(const WorkerDirectory&) = delete;

  // Every worker's directory, by index (this one included); before any worker runs.
  void set_workers(std::vector<WorkerDirectory*> all);
  // This worker's UDP tunnels (null: none), for flows of tunnels held here; before any worker runs.
  void set_udp(UdpClientFlows* udp) { udp_ = udp; }
  // Route hand-overs between an agent's sessions on two workers (docs/protocol.md §3.5; the caller is
  // TunnelService::set_remote_hand_over): asks the worker of session `holder` (an owner "EDGE/wK/N")
  // to hand route {type, name} over to the agent `instance` of token `subject`; `done` runs here
  // with the answer. False when `holder` is no session of another worker. That worker answers with
  // its `local_hand_over` (TunnelService::hand_over_to).
  bool ask_hand_over(const std::string& holder, std::string type, std::string name, std::string instance,
                     std::string subject, std::function<void(bool handed)> done);
  using LocalHandOver = std::function<bool(const std::string& holder, RouteKey key,
                                           const std::string& instance, const std::string& subject)>;
  void set_local_hand_over(LocalHandOver fn) { local_hand_over_ = std::move(fn); }
  // How long an open for another worker's session is retried while it is busy (PublicLimits::open_timeout).
  void set_open_timeout(std::chrono::milliseconds t) { open_timeout_ = t; }
  unsigned index() const { return index_; }

  // TunnelDirectory
  uint64_t route(std::string_view host, RouteEvents* events) override {
    return route_of(kHttp, host, events);
  }
  uint64_t route_of(std::string_view type, std::string_view host, RouteEvents* events) override;
  void cancel_route(uint64_t ticket) override;
  VisitorGate* visitor_gate(const RouteLookup& route) override;
  OpenStatus open_request(const RouteLookup& route, std::string_view client, RequestStreamEvents* events,
                          StreamRef* out) override;
  size_t write(const StreamRef& ref, std::span<const uint8_t> data, bool fin) override;
  size_t send_capacity(const StreamRef& ref) override;
  void consume(const StreamRef& ref, size_t n) override;
  void cancel(const StreamRef& ref, uint32_t code) override;
  void release(const StreamRef& ref) override;
  uint64_t add_relay(const RouteLookup& route, WtRelayPeer* peer) override;
  bool add_relay_as(const RouteLookup& route, uint64_t relay_id, WtRelayPeer* peer) override;
  void remove_relay(const RouteLookup& route, uint64_t relay_id) override;
  bool send_relay_datagram(const RouteLookup& route, uint64_t relay_id,
                           std::span<const uint8_t> payload) override;

  // UdpClientFlows
  ClientOpen open_client_flow(uint64_t session, uint32_t tunnel_id, UdpFlowClient* client,
                              UdpClientFlow* flow) override;
  ClientSend send_client_packet(const UdpClientFlow& flow, std::span<const uint8_t> payload) override;
  void close_client_flow(const UdpClientFlow& flow) override;
  size_t client_payload_limit(const UdpClientFlow& flow) const override;

  // Introspection (tests, metrics): hops (streams and UDP flows) whose near / far half lives here.
  size_t near_hops() const { return near_.size(); }
  size_t far_hops() const { return far_.size(); }
  uint64_t hops_opened() const { return hops_opened_; }
  size_t remote_gates() const { return gates_.size(); }
  size_t near_relays() const { return near_relays_.size(); }
  size_t near_udp_flows() const { return near_udp_.size(); }
  size_t far_udp_flows() const { return far_udp_.size(); }
  size_t far_relays() const { return far_relays_.size(); }
  uint64_t relay_datagrams_dropped() const { return datagrams_dropped_; }

 private:
  struct Lookup;
  struct NearHop;
  class FarHop;
  class FarLookup;
  class FarRelay;
  class FarUdp;
  struct NearUdp {
    UdpFlowClient* client = nullptr;
    unsigned worker = 0;
    bool open = false;  // the far worker said kOpened
    size_t limit = 0;   // the far flow's payload limit when it opened
  };
  struct NearRelay {
    WtRelayPeer* peer = nullptr;
    unsigned worker = 0;
  };
  using FarKey = std::pair<unsigned, uint64_t>;  // (near worker, hop or ticket id)

  static constexpr uint64_t kRemoteBit = uint64_t{1} << 63;
  static constexpr uint64_t kFarOpened = uint64_t{1} << 62;  // a hop the far side opened (agent's stream)
  static bool remote(uint64_t session) { return (session & kRemoteBit) != 0; }
  // A remote route's session number: worker and the far TunnelService's serial.
  static uint64_t remote_session(unsigned worker, uint64_t serial);
  static unsigned worker_in(uint64_t session) { return static_cast<unsigned>((session >> 48) & 0x7fff); }
  static uint64_t serial_in(uint64_t session) { return session & ((uint64_t{1} << 48) - 1); }

  // Queues a message for another worker; the messages of one turn of this loop go in one post per
  // worker (one wake-up of its thread, not one per message), in the order they were queued.
  template <typename F>
  void post_to(unsigned worker, F&& f);
  void flush_outbox();

  // Near side.
  void on_owner(uint64_t ticket, const RouteMatch& match);
  void answer(uint64_t ticket, const RouteLookup& r);
  void on_remote_route(uint64_t ticket, unsigned worker, RouteLookup r,
                       std::optional<tunnel::VisitorPolicy> policy);
  void on_opened(uint64_t hop, StreamRef real);
  void on_written(uint64_t hop, size_t n);
  void on_response(uint64_t hop, unsigned worker, StreamRef real, std::vector<uint8_t> data, bool fin);
  void on_aborted(uint64_t hop, std::optional<uint32_t> code, const std::string& reason);
  void on_refused(uint64_t hop, OpenStatus status, const std::string& reason);
  void on_stopped(uint64_t hop, std::optional<uint32_t> code);
  void on_relay_stream(uint64_t relay_id, unsigned worker, uint64_t hop, StreamRef real, bool uni);
  void on_relay_datagram(uint64_t relay_id, const std::vector<uint8_t>& payload);
  void on_relay_refused(uint64_t relay_id, const std::string& reason);
  void on_udp_opened(uint64_t id, ClientOpen result, size_t limit);
  void on_udp_packet(uint64_t id, const std::vector<uint8_t>& payload);
  void on_udp_end(uint64_t id, const std::string& why);
  // Posts a datagram toward `worker` unless kMaxDatagramsInFlight already wait there.
  template <typename F>
  bool post_datagram(unsigned worker, F&& f);
  NearHop* near(const StreamRef& ref);
  // cancel() (with its code) or release() of a hop.
  void near_end(const StreamRef& ref, std::optional<uint32_t> cancel_code);
  void maybe_forget(uint64_t hop);

  // Far side.
  void far_route(unsigned from, uint64_t ticket, const std::string& type, const std::string& host);
  void far_open(unsigned from, uint64_t hop, RouteLookup route, std::string client);
  void far_write(unsigned from, uint64_t hop, std::vector<uint8_t> data, bool fin);
  void far_end(unsigned from, uint64_t hop, std::optional<uint32_t> cancel_code);
  void far_add_relay(unsigned from, uint64_t relay_id, const RouteLookup& route);
  void far_remove_relay(unsigned from, uint64_t relay_id);
  void far_relay_datagram(unsigned from, uint64_t relay_id, const std::vector<uint8_t>& payload);
  RequestStreamEvents* far_agent_stream(FarRelay& relay, const StreamRef& ref, bool uni);
  void far_open_udp(unsigned from, uint64_t id, uint64_t serial, uint32_t tunnel_id);
  void far_hand_over(unsigned from, uint64_t ticket, const std::string& holder, const std::string& type,
                     const std::string& name, const std::string& instance, const std::string& subject);
  void on_hand_over(uint64_t ticket, bool handed);
  void far_udp_packet(unsigned from, uint64_t id, const std::vector<uint8_t>& payload);
  void far_close_udp(unsigned from, uint64_t id);
  void far_pump(FarHop& h);
  // Marks h dead and erases it once the call it is in has returned.
  void far_forget(FarHop& h);
  void far_try_open(FarHop& h);
  void arm_open_retry();
  void retry_opens();

  boost::asio::io_context& io_;
  unsigned index_;
  std::string edge_;
  TunnelDirectory& local_;
  RouteTable& routes_;
  std::shared_ptr<VisitorEnvironment> visitor_env_;
  std::vector<WorkerDirectory*> workers_;
  std::vector<std::vector<std::function<void()>>> outbox_;  // per worker, until flush_outbox()
  bool flush_posted_ = false;

  // Near: lookups under way (ticket → events), the one being answered inline, hops by id.
  uint64_t last_ticket_ = 0;
  uint64_t asking_ = 0;
  bool answered_inline_ = false;
  std::unordered_map<uint64_t, std::unique_ptr<Lookup>> lookups_;
  uint64_t last_hop_ = 0;
  std::unordered_map<uint64_t, NearHop> near_;
  // Remote tunnels' gates by (worker, serial, tunnel id).
  std::map<std::tuple<unsigned, uint64_t, uint32_t>, std::unique_ptr<VisitorGate>> gates_;
  // Relays on other workers' sessions, by relay id (from this worker's block).
  std::unordered_map<uint64_t, NearRelay> near_relays_;
  uint64_t last_relay_ = 0;
  // UDP flows on other workers' tunnels, by this worker's flow number (UdpClientFlow::flow_id).
  std::unordered_map<uint64_t, NearUdp> near_udp_;
  uint64_t last_udp_ = 0;
  UdpClientFlows* udp_ = nullptr;
  // Hand-overs asked of other workers, by ticket; the answer every one gets comes back by post.
  std::unordered_map<uint64_t, std::function<void(bool)>> hand_overs_;
  uint64_t last_hand_over_ = 0;
  LocalHandOver local_hand_over_;
  std::chrono::milliseconds open_timeout_ = kDefaultOpenTimeout;

  // Far: hops and route lookups asked by other workers.
  std::map<FarKey, std::unique_ptr<FarHop>> far_;
  std::map<FarKey, std::unique_ptr<FarLookup>> far_lookups_;
  std::map<FarKey, std::unique_ptr<FarRelay>> far_relays_;  // (near worker, relay id)
  std::map<FarKey, std::unique_ptr<FarUdp>> far_udp_;       // (near worker, its flow number)
  uint64_t far_opened_ = 0;                                 // hops opened from here
  std::atomic<size_t> datagrams_in_{0};                     // posted to this worker, not yet taken
  uint64_t datagrams_dropped_ = 0;
  boost::asio::steady_timer open_retry_;
  bool open_retry_armed_ = false;
  uint64_t hops_opened_ = 0;
  std::shared_ptr<int> alive_ = std::make_shared<int>(0);
};

}  // namespace wtmesh::edge
