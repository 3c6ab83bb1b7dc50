// The public side's limits against unauthenticated clients, with their defaults: one struct carried
// by value from the command line (cli/main.cc) through EdgeOptions, PublicListenerOptions and
// Http1Config / H2Config to ExchangeConfig; each layer enforces its own fields and passes the struct on
// (docs/architecture.md, "Limits"). Zero never means "no limit" unless a field says so.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>

namespace wtmesh::edge {

struct PublicLimits {
  // --- connections (PublicListener) ---
  // No byte read or written for this long closes a connection (and cancels its request).
  std::chrono::milliseconds idle_timeout{120'000};
  // The same for a connection upgraded to WebSocket (a quiet socket may legitimately wait for events
  // longer than a request would; applications ping within a minute or so).
  std::chrono::milliseconds websocket_idle_timeout{600'000};
  size_t max_connections = 10'000;      // further connections are closed at once (a reset)
  size_t max_connections_per_ip = 256;  // from one client address (IPv6: one /64); 0 = no cap
  // A TLS handshake must finish this long after the accept.
  std::chrono::milliseconds handshake_timeout{10'000};
  // TLS handshakes one client address (IPv6: one /64) may start: a token bucket of
  // tls_handshake_burst refilled at tls_handshakes_per_ip per second, taken when a connection's first
  // TLS record (the ClientHello) is complete, before any crypto; without a token the connection is
  // reset. Both 0: no limit. (QUIC has its own: quic::AddressLimitOptions.)
  double tls_handshakes_per_ip = 64;
  double tls_handshake_burst = 256;

  // --- HTTP/1.1 (Http1Connection) ---
  // The first request's header section must be complete this long after the connection started, a
  // later request's this long after its first byte (408, or a silent close when no byte came).
  std::chrono::milliseconds header_timeout{10'000};
  size_t max_pending_output = 64 * 1024;  // no new request is parsed while more waits for the client
  // The edge's own answers (404, 502, 429, ...) in a row on one connection before it closes it: the
  // kernel's socket buffers take megabytes of them from a client that never reads, each one logged.
  size_t max_local_answers = 100;

  // --- HTTP/2 (H2Connection; header_timeout, max_pending_output and max_local_answers above too) ---
  size_t h2_max_concurrent_streams = 100;  // SETTINGS_MAX_CONCURRENT_STREAMS (REFUSED_STREAM beyond)
  // Request body bytes one stream / the whole connection may send ahead of what the agent took
  // (a client may send 65,535 before it has seen our SETTINGS).
  size_t h2_stream_window = 64 * 1024;
  size_t h2_connection_window = 256 * 1024;

  // --- the exchange (PublicExchange) ---
  // How long a request waits for its route and a free stream on a busy session before it gets a
  // 503 (no route yet) or 502 (429 when over max_streams_per_client), and how often it retries the
  // stream meanwhile.
  std::chrono::milliseconds open_timeout{1000};
  std::chrono::milliseconds open_retry{10};
  size_t body_chunk = 16 * 1024;  // request body bytes decoded ahead of the stream, at most
  // Request body progress: the deadline starts body_timeout ahead; each byte received moves it
  // 1/body_min_rate s later, never more than body_timeout ahead of now (408 beyond). 0 = no rate.
  std::chrono::milliseconds body_timeout{20'000};
  uint64_t body_min_rate = 1024;

  // --- tunnel sessions (AgentSessionConfig, counted by TunnelDirectory) ---
  // One tunnel's request streams one client address may hold at once (429 beyond); 0 = no cap.
  size_t max_streams_per_client = 64;
};

}  // namespace wtmesh::edge
