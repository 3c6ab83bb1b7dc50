// Inside quic/: how a Connection meets ngtcp2. The callbacks record what happened into the
// Connection (its bookkeeping and its event list) and return; they never call the handler or back
// into ngtcp2 (docs/architecture.md). connection.cc runs the events after the library call returns.
#pragma once

#include <ngtcp2/ngtcp2.h>
#include <ngtcp2/ngtcp2_crypto.h>

#include <cstddef>
#include <cstdint>

namespace wtmesh::quic {

// The callback table of a server (true) or client connection: ngtcp2_crypto's for the handshake and
// packet protection, ours (ConnectionCallbacks, a friend of Connection) for everything else.
ngtcp2_callbacks make_callbacks(bool server);
// ngtcp2_crypto_conn_ref::get_conn for a ref whose user_data is the Connection.
ngtcp2_conn* connection_of(ngtcp2_crypto_conn_ref* ref);
// Cryptographically random bytes (gnutls_rnd); aborts if the library cannot give them.
void random_bytes(uint8_t* dest, size_t len);

}  // namespace wtmesh::quic
