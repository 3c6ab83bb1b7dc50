// The Asio driver of a QUIC endpoint: one UDP socket, many quic::Connections.
//
// What to do with each datagram (route it by destination connection id, accept a new connection,
// answer with Version Negotiation or Stateless Reset, refuse, drop) is decided by the socket-free
// quic::Dispatcher (dispatcher.h). This class does the I/O around it: it owns the socket, the
// connections and one timer per connection following ngtcp2's expiry (re-armed only when the expiry
// moves earlier: a timer that fires early just re-arms). Connections never touch the socket.
//
// Data path: reads are batched (recvmmsg + GRO, udp_io.h) and every packet of a batch is fed to its
// connection; each touched connection then writes once per ~64 datagrams read, as GSO trains built
// in one buffer shared by all connections. When the socket is full, a connection's unsent train is
// parked (at most two trains per connection) and the endpoint waits for the socket to be writable.
//
// Workers: several endpoints may share one address, each on its own thread (quic/endpoint_group.h);
// packets that reach this socket for another worker's connection are handed to it after the batch.
#pragma once

#include <array>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/udp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <deque>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "quic/connection.h"
#include "quic/dispatcher.h"
#include "quic/endpoint_group.h"
#include "quic/gso_train.h"
#include "quic/udp_io.h"

namespace wtmesh::quic {

class TlsServerContext;
class TlsClientContext;

struct ServerOptions {
  // Shared: each connection keeps the context it was accepted with, so certificates can be
  // replaced (set_server_tls) while older connections still use the old one.
  std::shared_ptr<const TlsServerContext> tls;
  TransportLimits limits;
  // Live connections; beyond, Initials are refused. In a group (join_group) this and retry_above
  // count the connections of all its endpoints.
  size_t max_connections = 4096;
  // Per client address (IPv4 address, IPv6 /64): live connections and a handshake rate.
  AddressLimitOptions address_limits;
  // Answer token-less Initials with a Retry while this many connections are open (0: always); half
  // of max_connections by default, so spoofed Initials cannot fill the table.
  size_t retry_above = 2048;
  // Called for each new server connection before its first packet is processed: install the
  // protocol handler (and app state) here.
  std::function<void(Connection&)> on_connection;
};

struct EndpointStats {
  uint64_t packets_in = 0;
  uint64_t packets_out = 0;
  uint64_t version_negotiations = 0;
  uint64_t stateless_resets = 0;
  uint64_t refused = 0;                      // new connections refused (limit reached or bad Initial)
  uint64_t refused_address_connections = 0;  // the address held its cap of connections
  uint64_t refused_handshake_rate = 0;       // the address started handshakes too fast
  uint64_t retries = 0;                      // Retry packets sent
  uint64_t invalid_tokens = 0;               // Initials with a Retry token that did not verify
  uint64_t send_blocked = 0;                 // trains parked because the socket buffer was full
  uint64_t parked_dropped = 0;               // trains dropped because a connection already had two parked
  uint64_t timer_wakeups = 0;                // connection timers that fired
  uint64_t empty_timer_wakeups = 0;          // of which sent nothing (a deadline that had moved, pacing)
  uint64_t forwarded_out = 0;                // packets handed to the worker that owns their connection
  uint64_t forwarded_dropped = 0;            // of which that worker's queue had no room for
  uint64_t forwarded_in = 0;                 // packets another worker's socket read for our connections
};

class Endpoint final {
 public:
  friend class EndpointGroup;
  // Binds the socket; throws boost::system::system_error with the address in the message.
  // `reuse_port`: SO_REUSEPORT, so the workers of an EndpointGroup can bind the same address.
  Endpoint(boost::asio::io_context& io, const boost::asio::ip::udp::endpoint& bind, bool reuse_port = false);
  ~Endpoint();
  Endpoint(const Endpoint&) = delete;
  Endpoint& operator=(const Endpoint&) = delete;

  boost::asio::ip::udp::endpoint local_endpoint() const;
  // Accept incoming connections.
  void listen(ServerOptions options);
  // This endpoint is worker `index` of `group` (bound with reuse_port to the group's address); its
  // connection ids name it, and it takes the packets other workers read for them. Before listen()
  // and before any connection; `group` outlives it or detaches it when destroyed first.
  void join_group(EndpointGroup& group, size_t index);
  // New connections use `tls` from now on (certificate renewal).
  void set_server_tls(std::shared_ptr<const TlsServerContext> tls) { options_.tls = std::move(tls); }
  // Starts a client connection to `remote`; `host` is the TLS server name. The caller installs a
  // handler on the returned connection before running the io_context. nullptr on failure.
  // `resume`: a ticket from an earlier connection to this server, for 0-RTT (Connection::connect).
  Connection* connect(const boost::asio::ip::udp::endpoint& remote, const std::string& host,
                      const TlsClientContext& tls, const TransportLimits& limits, std::string* error,
                      const ResumptionTicket* resume = nullptr);
  // Called after a connection is closed and just before it is destroyed.
  void set_on_removed(std::function<void(Connection&)> fn) { on_removed_ = std::move(fn); }

  // New connections are refused (CONNECTION_CLOSE CONNECTION_REFUSED) from now on; the open ones go on
  // (a drain).
  void refuse_new_connections() { dispatcher_.refuse_new_connections(); }
  // Closes every connection with an application error, then stops reading once they are gone.
  void shutdown(uint64_t app_error, std::string_view reason);
  size_t connection_count() const { return conns_.size(); }
  EndpointStats stats() const;
  // The socket layer: offload state and counters (system calls, GSO sends, GRO reads); tests and
  // benchmarks also switch GSO off here.
  UdpSocketIo& socket_io() { return *udp_; }
  const UdpSocketIo& socket_io() const { return *udp_; }

  // The socket-free part: routing table, stateless-reset secret, accept decision.
  const Dispatcher& dispatcher() const { return dispatcher_; }

 private:
  // A train the socket did not take (EAGAIN), kept until it is writable again.
  struct Parked {
    std::vector<uint8_t> data;
    ngtcp2_sockaddr_union to{};
    socklen_t tolen = 0;
    size_t segment_size = 0;
  };
  static constexpr size_t kMaxParked = 2;  // a split train and the packet it held back
  static constexpr Timestamp kNever = UINT64_MAX;

  struct Entry {
    std::unique_ptr<Connection> conn;
    boost::asio::steady_timer timer;
    Timestamp timer_deadline = kNever;  // when the pending timer wait fires (kNever: none pending)
    std::vector<Parked> parked;
    bool flush_posted = false;
    bool blocked = false;               // listed in blocked_
    std::optional<AddressKey> address;  // counted in the dispatcher's per-address limits
    explicit Entry(boost::asio::io_context& io) : timer(io) {}
  };
  class EntrySink;

  void start_read();
  void on_readable();
  // Client connections to an address whose port answered ICMP port unreachable close at once
  // (UdpSocketIo::take_unreachable): a local service or an edge that is gone is noticed in one
  // round trip, not after the handshake or unresponsive deadline. Only loopback and private
  // addresses: on the Internet an ICMP message is too easily forged (RFC 5927). Posted, so it never
  // runs inside a write or a read batch.
  void post_unreachable();
  void close_unreachable();
  // Writes for the connections the last read batch reached, at `read_at`, the batch's time.
  void service_touched(Timestamp read_at);
  // Returns the connection that consumed the packet, if any.
  Connection* handle_packet(std::span<const uint8_t> pkt, const sockaddr* from, socklen_t fromlen,
                            Timestamp now);
  // Stateless packets (version negotiation, reset): one datagram, dropped if the socket is full.
  void send_to(const sockaddr* to, socklen_t tolen, std::span<const uint8_t> pkt);
  bool send_train(Entry& e, const GsoTrain& train);
  void park(Entry& e, const sockaddr* to, socklen_t tolen, std::span<const uint8_t> data,
            size_t segment_size);
  // Sends e's parked trains; false if the socket is still full.
  bool flush_parked(Entry& e);
  void wait_writable();
  void on_writable();
  void post_flush(Entry& e);
  // On this endpoint's thread: packets another worker read for our connections.
  void receive_forwarded(const ForwardBatch& batch);
  // Hands the batch's packets for other workers to them (outbox_).
  void flush_forwards();
  Connection* accept(const Dispatcher::Decision& d, const ngtcp2_path& path, const ngtcp2_pkt_info& pi,
                     std::span<const uint8_t> pkt, Timestamp now);
  Entry* adopt(std::unique_ptr<Connection> conn);
  // Writes pending output and re-arms the timer; removes the connection if it is finished.
  // Writes what `conn` has, handles timers that are due, and re-arms its timer. `at`: the time of
  // the first write (0 = now).
  void service(Connection* conn, Timestamp at = 0);
  void arm_timer(Entry& e);
  void on_timer(Entry& e);  // e's wait fired: re-arm, or handle the expiry and write
  void refresh_reactor_timeout();
  void remove(Connection* conn);
  Entry* find(Connection* conn);

  boost::asio::io_context& io_;
  boost::asio::ip::udp::socket socket_;
  std::unique_ptr<UdpSocketIo> udp_;
  GsoTrain tx_train_;  // the one TX buffer, shared by every connection of this endpoint
  ngtcp2_sockaddr_union local_addr_{};
  socklen_t local_addrlen_ = 0;
  ServerOptions options_;
  Dispatcher dispatcher_{DispatcherOptions{}};
  std::unordered_map<Connection*, std::unique_ptr<Entry>> conns_;
  std::function<void(Connection&)> on_removed_;
  std::vector<Connection*> touched_;  // connections that read packets in this batch
  std::deque<Connection*> blocked_;   // connections with parked trains, in order
  bool write_wait_ = false;           // an async_wait(wait_write) is pending
  bool unreachable_posted_ = false;   // a close_unreachable() is queued
  // Asio's reactor re-programs its timerfd when a wait becomes the earliest or the timerfd fires,
  // not when the earliest wait is cancelled: a wait that arm_timer moved later would still wake
  // the process at its old deadline. A wait on this timer, due at once, makes the reactor
  // re-program the timerfd for what is left (refresh_reactor_timeout).
  boost::asio::steady_timer reactor_refresh_{io_};
  bool reactor_refresh_pending_ = false;
  EndpointStats stats_;
  EndpointGroup* group_ = nullptr;  // set by join_group; cleared by a group destroyed first
  // The group's count of live connections (null: no group), which conns_ adds to.
  std::shared_ptr<std::atomic<size_t>> group_connections_;
  size_t worker_ = 0;
  std::vector<ForwardBatch> outbox_;  // per worker: packets of this read batch for it
  bool shutting_down_ = false;
  // Handlers queued on the io_context check this before touching the endpoint.
  std::shared_ptr<int> alive_ = std::make_shared<int>(0);
};

}  // namespace wtmesh::quic
