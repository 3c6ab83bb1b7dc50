// The ngtcp2 callbacks of quic::Connection (connection_callbacks.h).
#include "quic/connection_callbacks.h"

#include <gnutls/crypto.h>
#include <ngtcp2/ngtcp2_crypto_gnutls.h>
#include <spdlog/spdlog.h>

#include <cstdlib>
#include <cstring>

#include "quic/connection.h"
#include "quic/tls_context.h"

namespace wtmesh::quic {

void random_bytes(uint8_t* dest, size_t len) {
  if (gnutls_rnd(GNUTLS_RND_RANDOM, dest, len) != 0) {
    // gnutls_rnd only fails if the library is in an error state; QUIC cannot run safely then.
    std::abort();
  }
}

void CidRegistry::new_cid(uint8_t* data, size_t len) { random_bytes(data, len); }

namespace {

void rand_cb(uint8_t* dest, size_t destlen, const ngtcp2_rand_ctx* /*ctx*/) { random_bytes(dest, destlen); }

}  // namespace

// The ngtcp2 callbacks, as trampolines into Connection members. Each returns 0 or
// NGTCP2_ERR_CALLBACK_FAILURE; nothing throws across the C boundary. They update the connection's own
// bookkeeping and record() what the handler must hear; they call neither the handler nor ngtcp2.
struct ConnectionCallbacks {
  static Connection* self(void* user_data) { return static_cast<Connection*>(user_data); }

  static ngtcp2_conn* get_conn(ngtcp2_crypto_conn_ref* ref) { return self(ref->user_data)->conn_; }

  static int handshake_completed(ngtcp2_conn* /*conn*/, void* user_data) {
    Connection* c = self(user_data);
    // ALPN is part of the protocol: both sides must have agreed on "h3" (RFC 9001 §8.1), which a
    // TLS stack that ignores ALPN would otherwise let slide.
    if (c->negotiated_alpn() != kH3Alpn) {
      spdlog::debug("quic: handshake without ALPN h3 (got '{}')", c->negotiated_alpn());
      return NGTCP2_ERR_CALLBACK_FAILURE;
    }
    c->state_ = Connection::State::kOpen;
    c->record({Connection::Event::Kind::kHandshakeCompleted});
    if (c->early_attempted_ && !early_data_accepted(c->tls_session_)) {  // a getter
      c->early_rejected_ = true;
      c->record({Connection::Event::Kind::kEarlyDataRejected});
    }
    return 0;
  }

  static int recv_tx_key(ngtcp2_conn* /*conn*/, ngtcp2_encryption_level level, void* user_data) {
    Connection* c = self(user_data);
    if (c->server_ && level == NGTCP2_ENCRYPTION_LEVEL_1RTT)
      c->record({Connection::Event::Kind::kApplicationKeys});
    return 0;
  }

  // ngtcp2_crypto's own handler, noting 1-RTT CRYPTO data on a client: a NewSessionTicket, which
  // hand_out_ticket() looks for after the read (so it does not on every packet).
  static int recv_crypto_data(ngtcp2_conn* conn, ngtcp2_encryption_level level, uint64_t offset,
                              const uint8_t* data, size_t datalen, void* user_data) {
    Connection* c = self(user_data);
    if (c->tls_session_ == nullptr) return NGTCP2_ERR_PROTO;  // a server after release_tls()
    if (!c->server_ && level == NGTCP2_ENCRYPTION_LEVEL_1RTT) c->ticket_pending_ = true;
    return ngtcp2_crypto_recv_crypto_data_cb(conn, level, offset, data, datalen, user_data);
  }

  static int recv_stream_data(ngtcp2_conn* /*conn*/, uint32_t flags, int64_t stream_id, uint64_t /*offset*/,
                              const uint8_t* data, size_t datalen, void* user_data,
                              void* /*stream_user_data*/) {
    Connection* c = self(user_data);
    c->stream(stream_id);  // make sure we track peer-opened streams (for close bookkeeping)
    Connection::Event e{Connection::Event::Kind::kStreamData};
    e.id = stream_id;
    e.fin = (flags & NGTCP2_STREAM_DATA_FLAG_FIN) != 0;
    c->record(e, {data, datalen});
    return 0;
  }

  static int acked_stream_data_offset(ngtcp2_conn* /*conn*/, int64_t stream_id, uint64_t offset,
                                      uint64_t datalen, void* user_data, void* /*stream_user_data*/) {
    Connection* c = self(user_data);
    auto it = c->streams_.find(stream_id);
    if (it == c->streams_.end()) return 0;
    auto& st = it->second;
    st.send.ack(offset, datalen);
    if (st.want_writable && st.send.capacity_left() > 0) {
      st.want_writable = false;
      Connection::Event e{Connection::Event::Kind::kStreamWritable};
      e.id = stream_id;
      c->record(e);
    }
    return 0;
  }

  static int stream_close(ngtcp2_conn* conn, uint32_t /*flags*/, int64_t stream_id,
                          uint64_t /*app_error_code*/, void* user_data, void* /*stream_user_data*/) {
    Connection* c = self(user_data);
    c->streams_.erase(stream_id);
    c->ready_.erase(stream_id);
    c->blocked_.erase(stream_id);
    Connection::Event e{Connection::Event::Kind::kStreamClosed};
    e.id = stream_id;
    e.local = ngtcp2_conn_is_local_stream(conn, stream_id) != 0;  // a getter: no state changes
    c->record(e);
    return 0;
  }

  static int stream_reset(ngtcp2_conn* /*conn*/, int64_t stream_id, uint64_t /*final_size*/,
                          uint64_t app_error_code, void* user_data, void* /*stream_user_data*/) {
    Connection* c = self(user_data);
    // A peer stream reset before any of its data arrived is known only from this reset: track it,
    // so the handler can reset our side back (reset_stream) and the stream closes, returning the
    // peer's stream credit (HTTP/3 rapid reset).
    if (quic::is_client_initiated(stream_id) == c->server_) c->stream(stream_id);
    Connection::Event e{Connection::Event::Kind::kStreamReset};
    e.id = stream_id;
    e.code = app_error_code;
    c->record(e);
    return 0;
  }

  // No stream_stop_sending callback: ngtcp2 calls it for OUR STOP_SENDING (shutdown_stream_read), not
  // the peer's. A peer's STOP_SENDING is answered by ngtcp2 itself with RESET_STREAM; we notice it
  // when a write finds the stream shut (see write_one_stream and peer_stopped()).

  static int extend_max_stream_data(ngtcp2_conn* /*conn*/, int64_t stream_id, uint64_t /*max_data*/,
                                    void* user_data, void* /*stream_user_data*/) {
    Connection* c = self(user_data);
    auto it = c->streams_.find(stream_id);
    if (it != c->streams_.end() && it->second.write_blocked) {
      it->second.write_blocked = false;
      c->blocked_.erase(stream_id);
      if (it->second.send.has_unsent()) c->ready_.insert(stream_id);
    }
    return 0;
  }

  static int extend_max_local_streams(ngtcp2_conn* /*conn*/, uint64_t /*max_streams*/, void* user_data) {
    self(user_data)->record({Connection::Event::Kind::kStreamsAvailable});
    return 0;
  }

  static int recv_datagram(ngtcp2_conn* /*conn*/, uint32_t /*flags*/, const uint8_t* data, size_t datalen,
                           void* user_data) {
    self(user_data)->record({Connection::Event::Kind::kDatagram}, {data, datalen});
    return 0;
  }

  static int get_new_connection_id(ngtcp2_conn* /*conn*/, ngtcp2_cid* cid, uint8_t* token, size_t cidlen,
                                   void* user_data) {
    Connection* c = self(user_data);
    c->cids_.new_cid(cid->data, cidlen);
    cid->datalen = cidlen;
    c->cids_.stateless_reset_token(token, *cid);
    c->cids_.add_cid(*cid, c);
    return 0;
  }

  static int remove_connection_id(ngtcp2_conn* /*conn*/, const ngtcp2_cid* cid, void* user_data) {
    self(user_data)->cids_.remove_cid(*cid);
    return 0;
  }
};

ngtcp2_callbacks make_callbacks(bool server) {
  ngtcp2_callbacks cb{};
  if (server) {
    cb.recv_client_initial = ngtcp2_crypto_recv_client_initial_cb;
  } else {
    cb.client_initial = ngtcp2_crypto_client_initial_cb;
    cb.recv_retry = ngtcp2_crypto_recv_retry_cb;
  }
  cb.recv_crypto_data = ConnectionCallbacks::recv_crypto_data;
  cb.encrypt = ngtcp2_crypto_encrypt_cb;
  cb.decrypt = ngtcp2_crypto_decrypt_cb;
  cb.hp_mask = ngtcp2_crypto_hp_mask_cb;
  cb.update_key = ngtcp2_crypto_update_key_cb;
  cb.delete_crypto_aead_ctx = ngtcp2_crypto_delete_crypto_aead_ctx_cb;
  cb.delete_crypto_cipher_ctx = ngtcp2_crypto_delete_crypto_cipher_ctx_cb;
  cb.get_path_challenge_data = ngtcp2_crypto_get_path_challenge_data_cb;
  cb.version_negotiation = ngtcp2_crypto_version_negotiation_cb;
  cb.rand = rand_cb;
  cb.handshake_completed = ConnectionCallbacks::handshake_completed;
  cb.recv_tx_key = ConnectionCallbacks::recv_tx_key;
  cb.recv_stream_data = ConnectionCallbacks::recv_stream_data;
  cb.acked_stream_data_offset = ConnectionCallbacks::acked_stream_data_offset;
  cb.stream_close = ConnectionCallbacks::stream_close;
  cb.stream_reset = ConnectionCallbacks::stream_reset;
  cb.extend_max_stream_data = ConnectionCallbacks::extend_max_stream_data;
  cb.extend_max_local_streams_bidi = ConnectionCallbacks::extend_max_local_streams;
  cb.extend_max_local_streams_uni = ConnectionCallbacks::extend_max_local_streams;
  cb.recv_datagram = ConnectionCallbacks::recv_datagram;
  cb.get_new_connection_id = ConnectionCallbacks::get_new_connection_id;
  cb.remove_connection_id = ConnectionCallbacks::remove_connection_id;
  return cb;
}

ngtcp2_conn* connection_of(ngtcp2_crypto_conn_ref* ref) { return ConnectionCallbacks::get_conn(ref); }

}  // namespace wtmesh::quic
