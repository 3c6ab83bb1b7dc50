// One QUIC connection: an ngtcp2_conn plus the bookkeeping ngtcp2 leaves to the application
// (per-stream send buffers kept until acked, receive credit, peer stream credit, datagram queue,
// closing/draining periods). Implements quic::Transport for the protocol above.
//
// I/O-free: the driver (quic::Endpoint) feeds packets with read_packet(), pulls packets with
// write_packets() (as GSO trains, see gso_train.h), and calls handle_expiry() at expiry(). Time is
// always a parameter.
//
// The ngtcp2 callbacks only record what happened (stream data is copied): the handler hears of it
// after the ngtcp2 call returns, in order, so handler code never runs inside ngtcp2 and may call any
// method here, close() included. A close() that does arrive while ngtcp2 is running (it cannot from
// the handler) is deferred until the library call returns. Events recorded after the handler was
// told the connection closed are dropped.
#pragma once

#include <gnutls/gnutls.h>
#include <ngtcp2/ngtcp2.h>
#include <ngtcp2/ngtcp2_crypto.h>

#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <span>
#include <string>
#include <vector>

#include "quic/gso_train.h"
#include "quic/send_buffer.h"
#include "quic/session_tickets.h"
#include "quic/transport.h"

namespace wtmesh::quic {

class TlsServerContext;
class TlsClientContext;

// Transport parameters and local caps. Defaults are safe for a public edge.
struct TransportLimits {
  uint64_t max_streams_bidi = 128;            // concurrently open peer bidi streams
  uint64_t max_streams_uni = 128;             // concurrently open peer uni streams
  uint64_t stream_window = 1 << 20;           // initial per-stream receive window
  uint64_t max_stream_window = 8 << 20;       // ngtcp2 auto-tuning ceiling per stream
  uint64_t connection_window = 4 << 20;       // initial connection receive window
  uint64_t max_connection_window = 32 << 20;  // auto-tuning ceiling per connection
  std::chrono::milliseconds idle_timeout{30000};
  std::chrono::milliseconds handshake_timeout{10000};
  uint64_t max_datagram_frame_size = 65535;  // 0 disables RFC 9221 datagrams
  size_t stream_send_buffer = 1 << 20;       // unacked + unsent bytes per stream
  // Datagrams waiting to be packed (unreliable: past either cap a datagram is dropped). The count
  // lets a burst of small ones through (200 DNS-sized answers at once: tests/peers/connect_udp.sh);
  // the bytes bound the memory and how long a full-size datagram can wait behind the others.
  size_t datagram_queue = 1024;
  size_t datagram_queue_bytes = 192 * 1024;
  // Largest UDP payload we send (clamped to [1200, 65507]). Packets start at 1200 bytes and PMTUD
  // probes upwards, with the Don't Fragment bit set, so a too-large value costs a few lost probes,
  // never fragments. 1452 fits every Internet path with a 1500-byte MTU (IPv6 included); on
  // loopback (MTU 65536) or jumbo-frame LANs a larger value cuts CPU per byte (bench/quic/README.md).
  size_t max_udp_payload = 1452;
  // A peer that stops answering (killed process, gone host) sends no CONNECTION_CLOSE, and the idle
  // timeout would take 30 s to notice. Once the handshake is done, when data we sent is waiting for
  // acknowledgement and nothing at all has arrived from the peer for max(unresponsive_floor,
  // unresponsive_ptos x PTO), the connection is closed ("peer unresponsive"). A live peer acks within
  // one RTT + its max_ack_delay, so this scales with the path. 0 ms disables it.
  std::chrono::milliseconds unresponsive_floor{600};
  unsigned unresponsive_ptos = 8;
  // A PING when nothing was sent or received for this long (0: never). A NAT that rebinds while we
  // are silent sends the peer's packets to a mapping that is gone, and the peer can only find our
  // new address in a packet from us: the agent sets 1 s, so an edge hears from it again within
  // about a second and migrates the path (docs/protocol.md §2, liveness), well before the edge's
  // own unresponsive floor. Costs one small packet each way per idle second.
  std::chrono::milliseconds keep_alive{0};
  // How long an acknowledgement of a lone packet may wait for data to ride along with it. ngtcp2
  // acks after max(smoothed RTT / 8, 1 ns), microseconds on a fast path, so one request and its
  // response cost ACK-only packets both ways, each a wake-up and system calls on both ends, and
  // ngtcp2 adds a PING to an ACK-only packet sent more than an RTT after the last one, which the
  // peer then acks. After a packet arrives, timers that fall due within ack_defer wait until then
  // (at most that late; RFC 9000 §13.2.1 allows acks up to the max_ack_delay we announce, 25 ms; a
  // PTO is later than that anyway). Not while we have stream data or datagrams to send (pacing then decides),
  // nor before the handshake completes.
  // Every second ack-eliciting packet is still acked at once (ngtcp2's ack_thresh), so bulk
  // transfers keep their ACK clock. 0 ms: ngtcp2's own timing.
  // 2 ms: an origin's answer usually comes sooner, and an ACK held that long inflates the peer's
  // RTT estimate little when it cannot subtract the delay (RFC 9002 §5.3: not below min_rtt).
  std::chrono::milliseconds ack_defer{2};
};

// Connection-id bookkeeping owned by the endpoint (routing table + stateless-reset secret).
class CidRegistry {
 public:
  virtual ~CidRegistry() = default;
  virtual void add_cid(const ngtcp2_cid& cid, class Connection* conn) = 0;
  virtual void remove_cid(const ngtcp2_cid& cid) = 0;
  virtual void stateless_reset_token(uint8_t* token, const ngtcp2_cid& cid) = 0;
  // Fills a new connection id of ours (`len` bytes): random, unless the registry encodes something in
  // it (quic::Dispatcher: the worker that owns the connection, quic/endpoint_group.h).
  virtual void new_cid(uint8_t* data, size_t len);
};

// Where write_packets() puts packets, one at a time (tests and simple drivers).
using PacketSink = std::function<void(const ngtcp2_path& path, std::span<const uint8_t> packet)>;

// Where write_packets() puts GSO trains (the endpoint's socket).
class TrainSink {
 public:
  virtual ~TrainSink() = default;
  // Sends train.data() to train.path() as datagrams of train.segment_size() bytes. Returns false
  // when the socket is blocked: the sink has kept what it could not send, and the connection stops
  // writing until the driver calls write_packets() again.
  virtual bool send_train(const GsoTrain& train) = 0;
};

using Timestamp = ngtcp2_tstamp;  // nanoseconds, steady clock
// The length of the connection ids our connections choose; the endpoint decodes short headers with it.
inline constexpr size_t kCidLength = 18;
Timestamp now_ts();

class Connection final : public Transport {
 public:
  enum class State { kHandshaking, kOpen, kClosing, kDraining, kClosed };

  // Server side: `initial` is the client's first packet, already checked with ngtcp2_accept().
  // `retry_original_dcid`: its Retry token verified (quic::Dispatcher), this was the client's first
  // destination id; the address counts as validated.
  static std::unique_ptr<Connection> accept(const ngtcp2_pkt_hd& initial, const ngtcp2_path& path,
                                            std::shared_ptr<const TlsServerContext> tls,
                                            const TransportLimits& limits, CidRegistry& cids, Timestamp now,
                                            std::string* error,
                                            const ngtcp2_cid* retry_original_dcid = nullptr);
  // Client side. `token`: sent in the client's Initials (a NEW_TOKEN token; tests forge one).
  // `resume`: a ticket from an earlier connection to this server (quic/session_tickets.h); streams
  // the handler opens and writes before the handshake completes then go out as 0-RTT.
  static std::unique_ptr<Connection> connect(const ngtcp2_path& path, const std::string& host,
                                             const TlsClientContext& tls, const TransportLimits& limits,
                                             CidRegistry& cids, Timestamp now, std::string* error,
                                             std::span<const uint8_t> token = {},
                                             const ResumptionTicket* resume = nullptr);
  ~Connection() override;
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  void set_handler(TransportHandler* handler) { handler_ = handler; }
  // Called whenever new output may be ready outside read/expiry processing (e.g. an application
  // write from a timer); the driver should schedule write_packets().
  void set_flush_hook(std::function<void()> hook) { flush_hook_ = std::move(hook); }
  // Called once the handshake completed, right after the handler heard it (outside ngtcp2's calls).
  void set_handshake_hook(std::function<void()> hook) { handshake_hook_ = std::move(hook); }
  // Client: called with each ticket the server issues (outside ngtcp2's calls), to resume the next
  // connection to this server with.
  void set_ticket_hook(std::function<void(ResumptionTicket)> hook) { ticket_hook_ = std::move(hook); }
  // The clock close() reads (it has no time parameter); default now_ts(). Tests with a fake clock
  // set theirs.
  void set_clock(std::function<Timestamp()> clock) { clock_ = std::move(clock); }
  // Opaque application state owned by the connection and destroyed with it (after the handler
  // stops being called).
  struct AppState {
    virtual ~AppState() = default;
  };
  void set_app_state(std::unique_ptr<AppState> app) { app_ = std::move(app); }
  AppState* app_state() const { return app_.get(); }

  // --- driver API ---
  // Returns false if the connection must be dropped now (state() tells why).
  bool read_packet(const ngtcp2_path& path, const ngtcp2_pkt_info& pi, std::span<const uint8_t> packet,
                   Timestamp now);
  // Writes packets as GSO trains built in `train` (one buffer shared by every connection of a
  // driver) until congestion control, pacing, the socket or the per-call budget stops it. Returns
  // true when it stopped only because of the budget (kMaxTrainsPerWrite): call again soon, after
  // other work. Stream data is served round-robin over the streams that have some.
  static constexpr size_t kMaxTrainsPerWrite = 16;
  bool write_packets(Timestamp now, GsoTrain& train, TrainSink& sink);
  // Same, one packet at a time into `sink`, until nothing more can be written.
  void write_packets(Timestamp now, const PacketSink& sink);
  // Returns false if the connection must be dropped now.
  bool handle_expiry(Timestamp now);
  Timestamp expiry() const;
  // The peer has been silent past the unresponsive deadline (TransportLimits::unresponsive_*): the
  // next handle_expiry() closes the connection unless a packet arrives first.
  bool unresponsive_due(Timestamp now) const {
    const Timestamp d = unresponsive_deadline();
    return d != 0 && now >= d;
  }
  State state() const { return state_; }
  bool handshake_completed() const;
  // 0-RTT (quic/session_tickets.h). Client: early_data_attempted() from connect() on, when the
  // ticket was taken; after the handshake, early_data_accepted() or, if the server refused the
  // early data, early_data_rejected(): the connection then closes ("0-RTT rejected"), since the
  // streams written early never reached the server, and its owner dials again without the ticket.
  // Server: early_data_accepted() after the handshake, when this client's 0-RTT was taken.
  bool early_data_attempted() const { return early_attempted_; }
  bool early_data_accepted() const;
  bool early_data_rejected() const { return early_rejected_; }
  bool session_resumed() const;
  // Tells the handler the connection is gone if it has not been told yet (the driver calls this
  // before destroying a connection it drops, e.g. on endpoint shutdown).
  void abandon(std::string_view reason) { finish(0, false, reason); }
  // The peer's UDP port is closed (the endpoint got ICMP port unreachable for a datagram sent to
  // it): the connection ends at once (state kClosed, reason `why`, no closing period), instead of
  // waiting out the handshake or unresponsive deadline. Not from inside an ngtcp2 call.
  void peer_unreachable(std::string_view why);
  // Changes TransportLimits::keep_alive on the live connection (0: none): the agent PINGs every
  // second while a request is under way and leaves an idle session to its heartbeat.
  void set_keep_alive(std::chrono::milliseconds after);
  std::chrono::milliseconds keep_alive() const { return limits_.keep_alive; }
  // The peer's transport close or our own, for logs.
  const std::string& close_reason() const { return close_reason_; }
  std::chrono::nanoseconds smoothed_rtt() const override;
  std::vector<ngtcp2_cid> scids() const;
  const ngtcp2_path& path() const;
  // The peer's address on the current path, as text ("192.0.2.1", "2001:db8::1"; IPv4-mapped IPv6 as
  // IPv4), for logs and per-client limits.
  std::string remote_address() const;
  // The largest UDP payload now sent on the path (grows as PMTUD probes succeed).
  size_t path_max_udp_payload() const;
  std::string negotiated_alpn() const;
  // Server: the GnuTLS session is freed once the handshake is done and its NewSessionTicket handed
  // to ngtcp2 (which copies CRYPTO data): an idle connection then holds none of GnuTLS' per-session
  // state (~10 KiB). Packet protection and key updates use ngtcp2's own keys and secrets; ALPN and
  // the resumption flags are kept; 1-RTT CRYPTO data from a client after that (a QUIC client sends
  // no post-handshake TLS message, RFC 9001 §4.1.3) closes the connection (PROTOCOL_VIOLATION).
  bool holds_tls_session() const { return tls_session_ != nullptr; }
  // Starts a key update (RFC 9001 §6): new packet protection keys from the next packet on. False if
  // ngtcp2 cannot yet (handshake not confirmed, or the previous update not yet acknowledged).
  bool update_keys();
  // How many more bidi streams the peer's MAX_STREAMS lets us open now.
  uint64_t local_bidi_streams_left() const;

  // --- Transport ---
  bool is_server() const override { return server_; }
  bool in_early_data() const override { return server_ && state_ == State::kHandshaking; }
  std::optional<StreamId> open_bidi_stream() override;
  std::optional<StreamId> open_uni_stream() override;
  size_t write(StreamId id, std::span<const uint8_t> data, bool fin) override;
  size_t send_capacity(StreamId id) const override;
  uint64_t unacked_bytes(StreamId id) const override;
  void reset_stream(StreamId id, uint64_t app_error) override;
  void stop_sending(StreamId id, uint64_t app_error) override;
  void consume(StreamId id, size_t n) override;
  size_t max_datagram_payload() const override;
  bool send_datagram(std::span<const uint8_t> payload) override;
  void close(uint64_t app_error, std::string_view reason) override;

  // Counters for tests and diagnostics.
  size_t stream_count() const { return streams_.size(); }
  bool in_library() const { return in_library_ > 0; }
  size_t queued_datagrams() const { return datagrams_.size(); }
  size_t queued_datagram_bytes() const { return datagram_bytes_; }

 private:
  struct Stream {
    SendBuffer send;
    bool write_blocked = false;  // flow-control blocked (waiting for MAX_STREAM_DATA)
    bool shut_wr = false;        // reset or fully sent + acked
    bool want_writable = false;  // a short write happened; tell the handler when space frees
  };

  Connection(bool server, const TransportLimits& limits, CidRegistry& cids);
  bool init_server(const ngtcp2_pkt_hd& initial, const ngtcp2_path& path, const TlsServerContext& tls,
                   Timestamp now, std::string* error, const ngtcp2_cid* retry_original_dcid);
  bool init_client(const ngtcp2_path& path, const std::string& host, const TlsClientContext& tls,
                   Timestamp now, std::string* error, std::span<const uint8_t> token,
                   const ResumptionTicket* resume);
  void hand_out_ticket();  // client: a ticket the server sent, to ticket_hook_
  void send_ticket();      // server: a NewSessionTicket once the handshake is done
  void release_tls();      // server: after send_ticket(), see holds_tls_session()
  struct Tx;               // the state of one write_packets() call (connection_tx.cc)

  void fill_settings(ngtcp2_settings& settings, ngtcp2_transport_params& params, Timestamp now,
                     std::vector<uint16_t>& probes) const;
  Stream& stream(StreamId id);
  void mark_ready(StreamId id);
  void request_flush();
  // Builds a CONNECTION_CLOSE from last_error_, sends it via `tx` (if writing) and enters the
  // closing period.
  void enter_closing(Timestamp now, Tx* tx);
  void finish(uint64_t code, bool is_app, std::string_view reason);
  // Transmit path (connection_tx.cc).
  void begin_train(Tx& tx);
  // drained: the pass sent everything it had (see idle_pacing_at_).
  bool send_train(Tx& tx, bool drained = false);
  void flush_all(Tx& tx, bool drained = false);
  bool emit(Tx& tx, const ngtcp2_path& path, const ngtcp2_pkt_info& pi, size_t len);
  void send_close_packet(Tx& tx);
  void fail_write(Tx& tx, ngtcp2_ssize rv);
  bool write_one_stream(StreamId id, Tx& tx);
  void peer_stopped(StreamId id, Stream& st);
  void write_datagrams(Tx& tx);
  void pop_datagram();

  // What the callbacks record, delivered by deliver_events() once the library call returned.
  struct Event {
    enum class Kind : uint8_t {
      kHandshakeCompleted,
      kStreamData,      // bytes [offset, offset + length) of event_bytes_
      kStreamWritable,  // send-buffer space freed after a short write
      kStreamClosed,    // `local`: we opened it
      kStreamReset,     // `code`: the peer's error code
      kStopSending,     // the peer stopped our sending side (noticed by a write pass)
      kStreamsAvailable,
      kDatagram,           // bytes as for kStreamData
      kEarlyDataRejected,  // a client's 0-RTT was refused by the server
      kApplicationKeys,    // server: the 1-RTT send key is installed
    };
    Kind kind;
    bool fin = false;
    bool local = false;
    StreamId id = -1;
    uint64_t code = 0;
    size_t offset = 0;
    size_t length = 0;
  };
  void record(Event e, std::span<const uint8_t> bytes = {});
  void deliver_events();
  void deliver(const Event& e, std::span<const uint8_t> bytes);
  // RAII for "inside an ngtcp2 call": callbacks may run; close() is deferred.
  struct LibraryCall {
    explicit LibraryCall(Connection& c) : conn(c) { ++conn.in_library_; }
    ~LibraryCall() { --conn.in_library_; }
    LibraryCall(const LibraryCall&) = delete;
    LibraryCall& operator=(const LibraryCall&) = delete;
    Connection& conn;
  };
  void apply_deferred_close();
  void apply_keep_alive();  // limits_.keep_alive, once conn_ exists

  friend struct ConnectionCallbacks;

  bool server_;
  TransportLimits limits_;
  CidRegistry& cids_;
  ngtcp2_conn* conn_ = nullptr;
  std::shared_ptr<const TlsServerContext> server_tls_;  // outlives tls_session_ (server side)
  gnutls_session_t tls_session_ = nullptr;
  // What the released TLS session said (release_tls()).
  std::string released_alpn_;
  bool released_resumed_ = false;
  bool released_early_accepted_ = false;
  ngtcp2_crypto_conn_ref conn_ref_{};
  TransportHandler* handler_ = nullptr;
  std::function<void()> flush_hook_;
  std::function<void()> handshake_hook_;
  std::function<void(ResumptionTicket)> ticket_hook_;
  bool early_attempted_ = false;
  bool early_rejected_ = false;
  bool ticket_pending_ =
      false;  // client: 1-RTT CRYPTO data arrived (a NewSessionTicket, for hand_out_ticket)
  std::function<Timestamp()> clock_;
  std::unique_ptr<AppState> app_;
  State state_ = State::kHandshaking;
  ngtcp2_ccerr last_error_{};
  std::vector<uint8_t> close_packet_;  // CONNECTION_CLOSE, resent during the closing period
  bool close_pending_ = false;
  Timestamp closing_deadline_ = 0;
  std::string close_reason_;
  bool closed_notified_ = false;
  Timestamp silent_since_ = 0;  // first send awaiting an answer since the peer's last packet (0 = none)
  Timestamp unresponsive_deadline() const;
  // TransportLimits::ack_defer: timers due before this wait until then (0 = no hold). A hold starts
  // when a packet arrives and none is active; a timer it deferred fires at its end, so no
  // timer is ever later than ack_defer, however steadily packets come and go.
  Timestamp hold_until_ = 0;
  // The pacing deadline ngtcp2 set after a write pass that sent everything (0 = none), and its
  // other timers' earliest deadline then. Until the next read or expiry, and while nothing waits
  // to be sent, expiry() reports the latter: pacing a burst that has already left would only
  // wake the driver to write nothing. Cleared by any read or expiry, which may move the others.
  Timestamp idle_pacing_at_ = 0;
  Timestamp after_idle_pacing_ = 0;
  uint64_t credit_owed_bidi_ = 0;  // peer streams closed since the last MAX_STREAMS (see deliver())
  uint64_t credit_owed_uni_ = 0;
  void start_hold(Timestamp now);
  bool in_read_ = false;       // inside read/expiry processing: the driver writes afterwards, no flush hook
  int in_library_ = 0;         // depth of ngtcp2 calls that may run callbacks
  Timestamp last_now_ = 0;     // the latest time the driver passed in (close() uses it)
  std::vector<Event> events_;  // recorded, not yet delivered
  std::vector<uint8_t> event_bytes_;
  std::vector<Event> delivering_;  // the batch being delivered (events_ takes new ones meanwhile)
  std::vector<uint8_t> delivering_bytes_;
  bool delivering_now_ = false;
  std::optional<std::pair<uint64_t, std::string>> deferred_close_;  // close() asked inside the library

  std::map<StreamId, Stream> streams_;
  std::set<StreamId> ready_;           // streams with unsent bytes or FIN
  std::set<StreamId> blocked_;         // streams waiting for MAX_STREAM_DATA (retried after each packet read)
  std::vector<StreamId> ready_order_;  // scratch for write_packets(), kept to avoid reallocating
  StreamId rr_next_ = 0;               // round-robin: where the next write_packets() starts
  std::deque<std::vector<uint8_t>> datagrams_;
  size_t datagram_bytes_ = 0;  // payload bytes in datagrams_
};

}  // namespace wtmesh::quic
