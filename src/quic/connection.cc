#include "quic/connection.h"

#include <arpa/inet.h>
#include <gnutls/crypto.h>
#include <netinet/in.h>
#include <ngtcp2/ngtcp2_crypto_gnutls.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <array>
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "quic/connection_callbacks.h"
#include "quic/tls_context.h"

namespace wtmesh::quic {

Timestamp now_ts() {
  return static_cast<Timestamp>(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                    std::chrono::steady_clock::now().time_since_epoch())
                                    .count());
}

namespace {

constexpr size_t kCloseBuffer = 1200;  // a CONNECTION_CLOSE always fits the minimum QUIC datagram

// PMTUD sizes tried below a large max_udp_payload, largest first: ngtcp2 probes them in order and
// stops at the first that gets through, so loopback reaches the top in one probe while a 1500 or
// 9000-byte LAN falls to its rung after a few lost probes. (For max_udp_payload <= 1452 ngtcp2's
// own list stays in use.)
constexpr uint16_t kProbeLadder[] = {32768, 16384, 8952, 4096, 1472, 1452, 1444, 1406, 1342, 1232};

}  // namespace

Connection::Connection(bool server, const TransportLimits& limits, CidRegistry& cids)
    : server_(server), limits_(limits), cids_(cids) {
  ngtcp2_ccerr_default(&last_error_);
  conn_ref_.get_conn = connection_of;
  conn_ref_.user_data = this;
}

Connection::~Connection() {
  // Application state first, while conn_ is still valid for anything it does on the way out.
  handler_ = nullptr;
  flush_hook_ = nullptr;
  app_.reset();
  // The endpoint drops every routing entry of this connection when it erases it.
  if (conn_) ngtcp2_conn_del(conn_);
  if (tls_session_) gnutls_deinit(tls_session_);
}

namespace {
// ngtcp2's log_printf: the line as the library formats it (it only records; nothing calls back in).
__attribute__((format(printf, 2, 3))) void log_to_stderr(void* /*user_data*/, const char* format, ...) {
  va_list ap;
  va_start(ap, format);
  std::vfprintf(stderr, format, ap);
  va_end(ap);
  std::fputc('\n', stderr);
}
}  // namespace

void Connection::fill_settings(ngtcp2_settings& settings, ngtcp2_transport_params& params, Timestamp now,
                               std::vector<uint16_t>& probes) const {
  ngtcp2_settings_default(&settings);
  settings.initial_ts = now;
  const size_t max_payload =
      std::clamp<size_t>(limits_.max_udp_payload, NGTCP2_MAX_UDP_PAYLOAD_SIZE, GsoTrain::kMaxBytes);
  settings.max_tx_udp_payload_size = max_payload;
  if (max_payload > 1452) {
    // ngtcp2 copies the probe list when the connection is created.
    probes.assign(1, static_cast<uint16_t>(max_payload));
    for (uint16_t p : kProbeLadder) {
      if (p < max_payload) probes.push_back(p);
    }
    settings.pmtud_probes = probes.data();
    settings.pmtud_probeslen = probes.size();
  }
  settings.max_window = limits_.max_connection_window;
  settings.max_stream_window = limits_.max_stream_window;
  settings.handshake_timeout =
      static_cast<ngtcp2_duration>(std::chrono::nanoseconds(limits_.handshake_timeout).count());
  settings.cc_algo = NGTCP2_CC_ALGO_CUBIC;
  // qlog stays off: CVE-2026-40170 in this ngtcp2 version. ngtcp2's own text log (frames, path
  // validation, recovery) goes to stderr when WTMESH_NGTCP2_LOG=1: a debugging aid, very verbose.
  static const bool library_log = [] {
    const char* v = std::getenv("WTMESH_NGTCP2_LOG");
    return v != nullptr && std::string_view(v) == "1";
  }();
  if (library_log) settings.log_printf = log_to_stderr;
  ngtcp2_transport_params_default(&params);
  params.initial_max_stream_data_bidi_local = limits_.stream_window;
  params.initial_max_stream_data_bidi_remote = limits_.stream_window;
  params.initial_max_stream_data_uni = limits_.stream_window;
  params.initial_max_data = limits_.connection_window;
  params.initial_max_streams_bidi = limits_.max_streams_bidi;
  params.initial_max_streams_uni = limits_.max_streams_uni;
  params.max_idle_timeout =
      static_cast<ngtcp2_duration>(std::chrono::nanoseconds(limits_.idle_timeout).count());
  params.max_datagram_frame_size = limits_.max_datagram_frame_size;
  params.active_connection_id_limit = 4;
  // What we accept is independent of what we send: reads take any datagram up to 64 KiB (the
  // largest the transport parameter allows, also ngtcp2's default).
  params.max_udp_payload_size = 65527;
}

std::unique_ptr<Connection> Connection::accept(const ngtcp2_pkt_hd& initial, const ngtcp2_path& path,
                                               std::shared_ptr<const TlsServerContext> tls,
                                               const TransportLimits& limits, CidRegistry& cids,
                                               Timestamp now, std::string* error,
                                               const ngtcp2_cid* retry_original_dcid) {
  if (!tls) {
    if (error) *error = "no TLS context";
    return nullptr;
  }
  std::unique_ptr<Connection> c(new Connection(true, limits, cids));
  c->server_tls_ = std::move(tls);
  if (!c->init_server(initial, path, *c->server_tls_, now, error, retry_original_dcid)) return nullptr;
  return c;
}

std::unique_ptr<Connection> Connection::connect(const ngtcp2_path& path, const std::string& host,
                                                const TlsClientContext& tls, const TransportLimits& limits,
                                                CidRegistry& cids, Timestamp now, std::string* error,
                                                std::span<const uint8_t> token,
                                                const ResumptionTicket* resume) {
  std::unique_ptr<Connection> c(new Connection(false, limits, cids));
  if (!c->init_client(path, host, tls, now, error, token, resume)) return nullptr;
  return c;
}

bool Connection::init_server(const ngtcp2_pkt_hd& initial, const ngtcp2_path& path,
                             const TlsServerContext& tls, Timestamp now, std::string* error,
                             const ngtcp2_cid* retry_original_dcid) {
  ngtcp2_settings settings;
  ngtcp2_transport_params params;
  std::vector<uint16_t> probes;
  fill_settings(settings, params, now, probes);
  params.original_dcid = initial.dcid;
  params.original_dcid_present = 1;
  if (retry_original_dcid != nullptr) {
    // Through a Retry (RFC 9000 §7.3): the client checks both ids against what it sent and received.
    // Only a token quic::Dispatcher verified goes to ngtcp2: a server given a token counts the
    // client's address as validated and lifts the 3x anti-amplification limit (RFC 9000 §8.1).
    // Any other token (forged, or a NEW_TOKEN token, which we never issue) is dropped here, so the
    // address stays unvalidated until the handshake proves it (issue 14 6a).
    settings.token = initial.token;
    settings.tokenlen = initial.tokenlen;
    settings.token_type = NGTCP2_TOKEN_TYPE_RETRY;
    params.original_dcid = *retry_original_dcid;
    params.retry_scid = initial.dcid;
    params.retry_scid_present = 1;
  }
  params.stateless_reset_token_present = 1;
  ngtcp2_cid scid;
  scid.datalen = kCidLength;
  cids_.new_cid(scid.data, scid.datalen);
  cids_.stateless_reset_token(params.stateless_reset_token, scid);

  const ngtcp2_callbacks cb = make_callbacks(true);
  int rv = ngtcp2_conn_server_new(&conn_, &initial.scid, &scid, &path, initial.version, &cb, &settings,
                                  &params, nullptr, this);
  if (rv != 0) {
    if (error) *error = std::string("ngtcp2_conn_server_new: ") + ngtcp2_strerror(rv);
    return false;
  }
  apply_keep_alive();
  tls_session_ = tls.new_session(&conn_ref_);
  if (!tls_session_) {
    if (error) *error = "could not create a TLS session";
    return false;
  }
  ngtcp2_conn_set_tls_native_handle(conn_, tls_session_);
  // The client's original DCID routes its retransmitted Initials until it switches to our SCID.
  cids_.add_cid(initial.dcid, this);
  cids_.add_cid(scid, this);
  return true;
}

bool Connection::init_client(const ngtcp2_path& path, const std::string& host, const TlsClientContext& tls,
                             Timestamp now, std::string* error, std::span<const uint8_t> token,
                             const ResumptionTicket* resume) {
  ngtcp2_settings settings;
  ngtcp2_transport_params params;
  std::vector<uint16_t> probes;
  fill_settings(settings, params, now, probes);
  settings.token = token.empty() ? nullptr : token.data();  // ngtcp2 copies it
  settings.tokenlen = token.size();
  ngtcp2_cid scid, dcid;
  scid.datalen = kCidLength;
  cids_.new_cid(scid.data, scid.datalen);
  dcid.datalen = kCidLength;
  random_bytes(dcid.data, dcid.datalen);

  const ngtcp2_callbacks cb = make_callbacks(false);
  int rv = ngtcp2_conn_client_new(&conn_, &dcid, &scid, &path, NGTCP2_PROTO_VER_V1, &cb, &settings, &params,
                                  nullptr, this);
  if (rv != 0) {
    if (error) *error = std::string("ngtcp2_conn_client_new: ") + ngtcp2_strerror(rv);
    return false;
  }
  apply_keep_alive();
  const bool offer = resume != nullptr && resume->usable();
  bool resuming = false;
  tls_session_ = tls.new_session(
      &conn_ref_, host, offer ? std::span<const uint8_t>(resume->tls_session) : std::span<const uint8_t>(),
      &resuming);
  if (!tls_session_) {
    if (error) *error = "could not create a TLS session";
    return false;
  }
  ngtcp2_conn_set_tls_native_handle(conn_, tls_session_);
  if (resuming) {
    // The server's limits from the ticket's connection bound what 0-RTT may send (RFC 9000 §7.4.1).
    const int rv = ngtcp2_conn_decode_and_set_0rtt_transport_params(conn_, resume->transport_params.data(),
                                                                    resume->transport_params.size());
    early_attempted_ = rv == 0;
    if (rv != 0) spdlog::debug("quic: the ticket's transport parameters: {}", ngtcp2_strerror(rv));
  }
  cids_.add_cid(scid, this);
  return true;
}

bool Connection::session_resumed() const {
  return tls_session_ ? quic::session_resumed(tls_session_) : released_resumed_;
}

bool Connection::early_data_accepted() const {
  if (state_ == State::kHandshaking) return false;
  return tls_session_ ? quic::early_data_accepted(tls_session_) : released_early_accepted_;
}

void Connection::hand_out_ticket() {
  if (!ticket_pending_ || !ticket_hook_ || state_ != State::kOpen) return;
  ticket_pending_ = false;
  std::vector<uint8_t> tls = take_session_ticket(tls_session_);
  if (tls.empty()) return;
  ResumptionTicket t;
  t.tls_session = std::move(tls);
  std::array<uint8_t, 256> tp{};
  const ngtcp2_ssize n = ngtcp2_conn_encode_0rtt_transport_params(conn_, tp.data(), tp.size());
  if (n <= 0) return;
  t.transport_params.assign(tp.begin(), tp.begin() + n);
  ticket_hook_(std::move(t));
}

void Connection::send_ticket() {
  if (!server_ || !server_tls_ || !server_tls_->resumption_enabled()) return;
  // Through ngtcp2_crypto's GnuTLS glue into this connection's CRYPTO stream; we are not inside an
  // ngtcp2 call here, and the next write pass sends it.
  if (int rv = gnutls_session_ticket_send(tls_session_, 1, 0); rv < 0) {
    spdlog::debug("quic: gnutls_session_ticket_send: {}", gnutls_strerror(rv));
    return;
  }
  request_flush();
}

void Connection::release_tls() {
  if (!server_ || tls_session_ == nullptr || state_ != State::kOpen) return;
  released_alpn_ = negotiated_alpn();
  released_resumed_ = quic::session_resumed(tls_session_);
  released_early_accepted_ = quic::early_data_accepted(tls_session_);
  // From now on ngtcp2 has no TLS handle: recv_crypto_data refuses before it would need one.
  ngtcp2_conn_set_tls_native_handle(conn_, nullptr);
  gnutls_deinit(tls_session_);
  tls_session_ = nullptr;
}

void Connection::peer_unreachable(std::string_view why) {
  if (state_ == State::kClosed) return;
  // No closing period (RFC 9000 §10.2 keeps one for a peer that may still send): nothing listens
  // at the peer's address, so the connection ends now, as an idle one does.
  close_reason_ = std::string(why);
  state_ = State::kClosed;
  finish(0, false, close_reason_);
}

bool Connection::update_keys() {
  if (conn_ == nullptr || state_ != State::kOpen) return false;
  const Timestamp now = std::max(last_now_, clock_ ? clock_() : now_ts());
  last_now_ = now;
  int rv = 0;
  {
    LibraryCall call(*this);
    rv = ngtcp2_conn_initiate_key_update(conn_, now);
  }
  if (rv != 0) {
    spdlog::debug("quic: key update not started: {}", ngtcp2_strerror(rv));
    return false;
  }
  request_flush();
  return true;
}

void Connection::apply_keep_alive() {
  // UINT64_MAX: none (ngtcp2 treats 0 the same, but reserves it).
  const auto ns = std::chrono::nanoseconds(limits_.keep_alive).count();
  ngtcp2_conn_set_keep_alive_timeout(conn_, ns > 0 ? static_cast<ngtcp2_duration>(ns) : UINT64_MAX);
}

void Connection::set_keep_alive(std::chrono::milliseconds after) {
  if (after == limits_.keep_alive) return;
  limits_.keep_alive = after;
  if (conn_ == nullptr) return;
  apply_keep_alive();
  request_flush();  // the driver re-reads expiry() and re-arms its timer
}

bool Connection::handshake_completed() const { return ngtcp2_conn_get_handshake_completed(conn_) != 0; }

std::chrono::nanoseconds Connection::smoothed_rtt() const {
  ngtcp2_conn_info info;
  ngtcp2_conn_get_conn_info(conn_, &info);
  return std::chrono::nanoseconds(info.smoothed_rtt);
}

std::vector<ngtcp2_cid> Connection::scids() const {
  std::vector<ngtcp2_cid> out(ngtcp2_conn_get_scid(conn_, nullptr));
  ngtcp2_conn_get_scid(conn_, out.data());
  return out;
}

const ngtcp2_path& Connection::path() const { return *ngtcp2_conn_get_path(conn_); }

std::string Connection::remote_address() const {
  const ngtcp2_addr& a = path().remote;
  char buf[INET6_ADDRSTRLEN] = {};
  if (a.addr->sa_family == AF_INET) {
    inet_ntop(AF_INET, &reinterpret_cast<const sockaddr_in*>(a.addr)->sin_addr, buf, sizeof(buf));
    return buf;
  }
  if (a.addr->sa_family == AF_INET6) {
    const auto* in6 = reinterpret_cast<const sockaddr_in6*>(a.addr);
    if (IN6_IS_ADDR_V4MAPPED(&in6->sin6_addr)) {
      inet_ntop(AF_INET, &in6->sin6_addr.s6_addr[12], buf, sizeof(buf));
    } else {
      inet_ntop(AF_INET6, &in6->sin6_addr, buf, sizeof(buf));
    }
    return buf;
  }
  return "?";
}

size_t Connection::path_max_udp_payload() const {
  return ngtcp2_conn_get_path_max_tx_udp_payload_size(conn_);
}

uint64_t Connection::local_bidi_streams_left() const {
  return conn_ == nullptr ? 0 : ngtcp2_conn_get_streams_bidi_left(conn_);
}

std::string Connection::negotiated_alpn() const {
  if (!tls_session_) return released_alpn_;
  gnutls_datum_t alpn{};
  if (tls_session_ && gnutls_alpn_get_selected_protocol(tls_session_, &alpn) == 0) {
    return std::string(reinterpret_cast<const char*>(alpn.data), alpn.size);
  }
  return {};
}

Connection::Stream& Connection::stream(StreamId id) {
  auto it = streams_.find(id);
  if (it == streams_.end()) {
    it = streams_.emplace(std::piecewise_construct, std::forward_as_tuple(id), std::forward_as_tuple()).first;
    it->second.send = SendBuffer(limits_.stream_send_buffer);
  }
  return it->second;
}

void Connection::request_flush() {
  if (!in_read_ && flush_hook_) flush_hook_();
}

void Connection::mark_ready(StreamId id) {
  ready_.insert(id);
  request_flush();
}

std::optional<StreamId> Connection::open_bidi_stream() {
  if (state_ != State::kOpen && state_ != State::kHandshaking) return std::nullopt;
  int64_t id = -1;
  if (ngtcp2_conn_open_bidi_stream(conn_, &id, nullptr) != 0) return std::nullopt;
  stream(id);
  return id;
}

std::optional<StreamId> Connection::open_uni_stream() {
  if (state_ != State::kOpen && state_ != State::kHandshaking) return std::nullopt;
  int64_t id = -1;
  if (ngtcp2_conn_open_uni_stream(conn_, &id, nullptr) != 0) return std::nullopt;
  stream(id);
  return id;
}

size_t Connection::write(StreamId id, std::span<const uint8_t> data, bool fin) {
  auto it = streams_.find(id);
  if (it == streams_.end() || it->second.shut_wr) return 0;
  Stream& st = it->second;
  const size_t n = st.send.append(data, fin);
  if (n < data.size()) st.want_writable = true;
  if (st.send.has_unsent()) mark_ready(id);
  return n;
}

size_t Connection::send_capacity(StreamId id) const {
  auto it = streams_.find(id);
  if (it == streams_.end() || it->second.shut_wr || it->second.send.fin_queued()) return 0;
  return it->second.send.capacity_left();
}

uint64_t Connection::unacked_bytes(StreamId id) const {
  auto it = streams_.find(id);
  if (it == streams_.end() || it->second.shut_wr) return 0;
  return it->second.send.unacked_bytes();
}

void Connection::reset_stream(StreamId id, uint64_t app_error) {
  auto it = streams_.find(id);
  if (it == streams_.end()) return;
  it->second.shut_wr = true;
  ready_.erase(id);
  ngtcp2_conn_shutdown_stream_write(conn_, 0, id, app_error);
  request_flush();
}

void Connection::stop_sending(StreamId id, uint64_t app_error) {
  if (streams_.find(id) == streams_.end()) return;
  ngtcp2_conn_shutdown_stream_read(conn_, 0, id, app_error);
  request_flush();
}

void Connection::consume(StreamId id, size_t n) {
  if (n == 0 || !conn_) return;
  ngtcp2_conn_extend_max_stream_offset(conn_, id, n);
  ngtcp2_conn_extend_max_offset(conn_, n);
  request_flush();
}

size_t Connection::max_datagram_payload() const {
  const ngtcp2_transport_params* remote = ngtcp2_conn_get_remote_transport_params(conn_);
  if (!remote || remote->max_datagram_frame_size == 0) return 0;
  // Path payload minus the short header (1 + DCID + up to 4-byte packet number), the AEAD tag (16)
  // and the DATAGRAM frame header (type + length varint, at most 1 + 2 here).
  const size_t path_max = ngtcp2_conn_get_path_max_tx_udp_payload_size(conn_);
  const size_t overhead = 1 + NGTCP2_MAX_CIDLEN + 4 + 16 + 3;
  const size_t by_path = path_max > overhead ? path_max - overhead : 0;
  const size_t by_peer = remote->max_datagram_frame_size > 3 ? remote->max_datagram_frame_size - 3 : 0;
  return std::min(by_path, static_cast<size_t>(by_peer));
}

bool Connection::send_datagram(std::span<const uint8_t> payload) {
  if (state_ != State::kOpen || payload.size() > max_datagram_payload()) return false;
  if (datagrams_.size() >= limits_.datagram_queue ||
      datagram_bytes_ + payload.size() > limits_.datagram_queue_bytes)
    return false;  // unreliable: drop, never grow
  datagrams_.emplace_back(payload.begin(), payload.end());
  datagram_bytes_ += payload.size();
  request_flush();
  return true;
}

void Connection::close(uint64_t app_error, std::string_view reason) {
  if (state_ == State::kClosing || state_ == State::kDraining || state_ == State::kClosed) return;
  if (in_library_ > 0) {
    // ngtcp2 forbids writing CONNECTION_CLOSE from inside one of its calls: after it returns.
    if (!deferred_close_) deferred_close_.emplace(app_error, std::string(reason));
    return;
  }
  ngtcp2_ccerr_set_application_error(&last_error_, app_error, reinterpret_cast<const uint8_t*>(reason.data()),
                                     reason.size());
  close_reason_ = std::string(reason);
  // An application close has no time parameter: the connection's clock, never before the latest
  // time the driver passed in (ngtcp2 requires time to never go backwards).
  enter_closing(std::max(last_now_, clock_ ? clock_() : now_ts()), nullptr);
  request_flush();
}

void Connection::enter_closing(Timestamp now, Tx* tx) {
  if (state_ == State::kClosing || state_ == State::kClosed) return;
  if (state_ == State::kDraining) return;
  now = std::max(now, last_now_);  // every time given to ngtcp2 is at or after the previous one
  last_now_ = now;
  close_packet_.resize(kCloseBuffer);
  ngtcp2_path_storage ps;
  ngtcp2_path_storage_zero(&ps);
  ngtcp2_pkt_info pi{};
  const ngtcp2_ssize n = ngtcp2_conn_write_connection_close(conn_, &ps.path, &pi, close_packet_.data(),
                                                            close_packet_.size(), &last_error_, now);
  close_packet_.resize(n > 0 ? static_cast<size_t>(n) : 0);
  state_ = State::kClosing;
  closing_deadline_ = now + 3 * ngtcp2_conn_get_pto(conn_);
  close_pending_ = true;
  if (tx) send_close_packet(*tx);
  const bool is_app = last_error_.type == NGTCP2_CCERR_TYPE_APPLICATION;
  finish(last_error_.error_code, is_app, close_reason_);
}

bool Connection::read_packet(const ngtcp2_path& path, const ngtcp2_pkt_info& pi,
                             std::span<const uint8_t> packet, Timestamp now) {
  if (state_ == State::kDraining || state_ == State::kClosed) return state_ != State::kClosed;
  if (state_ == State::kClosing) {
    // Answer with our CONNECTION_CLOSE again (RFC 9000 §10.2.1); the driver sends it on flush.
    close_pending_ = true;
    return true;
  }
  now = std::max(now, last_now_);  // ngtcp2 requires time never to go backwards
  last_now_ = now;
  idle_pacing_at_ = 0;
  in_read_ = true;
  int rv;
  {
    LibraryCall call(*this);
    rv = ngtcp2_conn_read_pkt(conn_, &path, &pi, packet.data(), packet.size(), now);
  }
  // What the packet carried reaches the handler now, before what its error (if any) means.
  deliver_events();
  if (rv == 0) hand_out_ticket();
  in_read_ = false;
  apply_deferred_close();
  if (rv == 0) {
    silent_since_ = 0;  // the peer is alive
    start_hold(now);
    // The packet may have carried STOP_SENDING for a stream that waits for flow-control credit:
    // the next write pass tries those streams again, so a stopped one is noticed (peer_stopped()).
    if (!blocked_.empty()) {
      ready_.insert(blocked_.begin(), blocked_.end());
      request_flush();
    }
    return true;
  }
  switch (rv) {
    case NGTCP2_ERR_DRAINING: {
      state_ = State::kDraining;
      closing_deadline_ = now + 3 * ngtcp2_conn_get_pto(conn_);
      const ngtcp2_ccerr* peer = ngtcp2_conn_get_ccerr(conn_);
      close_reason_ = std::string(reinterpret_cast<const char*>(peer->reason), peer->reasonlen);
      finish(peer->error_code, peer->type == NGTCP2_CCERR_TYPE_APPLICATION, close_reason_);
      return true;
    }
    case NGTCP2_ERR_DROP_CONN:
    case NGTCP2_ERR_RETRY:
      state_ = State::kClosed;
      finish(NGTCP2_INTERNAL_ERROR, false, ngtcp2_strerror(rv));
      return false;
    case NGTCP2_ERR_CRYPTO:
      ngtcp2_ccerr_set_tls_alert(&last_error_, ngtcp2_conn_get_tls_alert(conn_), nullptr, 0);
      close_reason_ = "TLS handshake failed (alert " + std::to_string(ngtcp2_conn_get_tls_alert(conn_)) + ")";
      // A client that refused the server's certificate says why (verify_failure is "" otherwise).
      if (!server_) {
        if (const std::string why = verify_failure(tls_session_); !why.empty()) close_reason_ += ": " + why;
      }
      break;
    default:
      ngtcp2_ccerr_set_liberr(&last_error_, rv, nullptr, 0);
      close_reason_ = ngtcp2_strerror(rv);
      break;
  }
  enter_closing(now, nullptr);
  return true;
}

bool Connection::handle_expiry(Timestamp now) {
  now = std::max(now, last_now_);  // ngtcp2 requires time never to go backwards
  last_now_ = now;
  idle_pacing_at_ = 0;
  if (now >= hold_until_) hold_until_ = 0;
  if (state_ == State::kClosing || state_ == State::kDraining) {
    if (now >= closing_deadline_) {
      state_ = State::kClosed;
      return false;
    }
    return true;
  }
  if (const Timestamp d = unresponsive_deadline(); d != 0 && now >= d) {
    spdlog::debug("quic: peer unresponsive for {} ms with data in flight; closing",
                  (now - silent_since_) / NGTCP2_MILLISECONDS);
    ngtcp2_ccerr_set_transport_error(&last_error_, NGTCP2_NO_ERROR, nullptr, 0);
    close_reason_ = "peer unresponsive";
    enter_closing(now, nullptr);
    return true;
  }
  in_read_ = true;
  int rv;
  {
    LibraryCall call(*this);
    rv = ngtcp2_conn_handle_expiry(conn_, now);
  }
  deliver_events();
  in_read_ = false;
  apply_deferred_close();
  if (rv == 0) return true;
  if (rv == NGTCP2_ERR_IDLE_CLOSE) {
    // Idle timeout: drop silently (RFC 9000 §10.1).
    state_ = State::kClosed;
    finish(0, false, "idle timeout");
    return false;
  }
  ngtcp2_ccerr_set_liberr(&last_error_, rv, nullptr, 0);
  close_reason_ = ngtcp2_strerror(rv);
  enter_closing(now, nullptr);
  return true;
}

Timestamp Connection::expiry() const {
  if (state_ == State::kClosing || state_ == State::kDraining) return closing_deadline_;
  Timestamp t = ngtcp2_conn_get_expiry(conn_);
  const bool idle = ready_.empty() && datagrams_.empty();
  if (idle && idle_pacing_at_ != 0 && t == idle_pacing_at_) t = after_idle_pacing_;
  const Timestamp d = unresponsive_deadline();
  if (d != 0 && d < t) t = d;
  // Pacing decides when queued data goes out: a hold would slow a transfer down.
  if (hold_until_ > t && idle) return hold_until_;
  return t;
}

void Connection::start_hold(Timestamp now) {
  // One hold at a time. A hold that ran out without a handle_expiry() deferred nothing (every
  // timer was later than its end), so a new one may start.
  if (hold_until_ > now || limits_.ack_defer.count() <= 0 || state_ != State::kOpen ||
      !ngtcp2_conn_get_handshake_completed(conn_)) {
    return;
  }
  // Below the max_ack_delay we announce (ngtcp2's default, 25 ms), with room for a late wake-up.
  constexpr std::chrono::milliseconds kMaxHold{20};
  hold_until_ =
      now + static_cast<Timestamp>(std::chrono::nanoseconds(std::min(limits_.ack_defer, kMaxHold)).count());
}

Timestamp Connection::unresponsive_deadline() const {
  if (silent_since_ == 0 || state_ != State::kOpen || limits_.unresponsive_floor.count() == 0) return 0;
  const Timestamp floor = static_cast<Timestamp>(limits_.unresponsive_floor.count()) * NGTCP2_MILLISECONDS;
  const Timestamp by_pto = limits_.unresponsive_ptos * ngtcp2_conn_get_pto(conn_);
  return silent_since_ + std::max(floor, by_pto);
}

}  // namespace wtmesh::quic
