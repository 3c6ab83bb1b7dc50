// Configuration of WebTransport endpoints, whatever the transport (wt/h3_server.h, wt/h3_client.h
// today): caps on sessions, streams and the buffer of streams/datagrams that arrive before their
// session exists. Transport-neutral: nothing here names HTTP/3 or QUIC.
// Every cap here has a unit test that hits it (tests/unit/wt/).
#pragma once

#include <chrono>
#include <cstddef>
#include <functional>
#include <string>
#include <vector>

#include "common/time.h"

namespace wtmesh::wt {

// Source of "now" used to stamp buffered streams/datagrams. Empty = std::chrono::steady_clock::now.
// Expiry itself only happens in on_tick(now), so tests drive time with a fake clock.
using Clock = std::function<SteadyTime()>;

struct CommonConfig {
  // Concurrent sessions per connection. WebTransport flow control is never negotiated by us, so
  // draft-ietf-webtrans-http3 §5 allows exactly one; larger values exist for tests only.
  size_t max_sessions = 1;
  // Concurrently open streams per session (wt::StreamTable), counted separately for peer-opened streams
  // (extras are refused with WT_FLOW_CONTROL_ERROR) and locally opened ones (open_*_stream returns nullopt).
  size_t max_streams_per_session = 256;
  // Streams that arrive before their session is known (reordering, or the CONNECT is still
  // pending). Over the cap, or after the timeout, they are refused with WT_BUFFERED_STREAM_REJECTED.
  size_t max_buffered_streams = 24;
  size_t max_buffered_stream_bytes = 16 * 1024;  // early bytes held per buffered stream
  size_t max_buffered_datagrams = 16;            // datagrams beyond these caps are dropped
  size_t max_buffered_datagram_bytes = 16 * 1024;
  std::chrono::milliseconds buffered_stream_timeout{5000};
  // Capsule bytes the CONNECT stream has not taken yet (DRAIN written while the stream is blocked).
  size_t max_pending_capsule_bytes = 4096;
  Clock clock;
};

struct ServerConfig : CommonConfig {
  // Allowed serialized origins ("https://example.com:8443"). Empty list or "*" = any origin. A
  // request without an Origin header is always allowed (it is not from a browser).
  std::vector<std::string> allowed_origins;
  // CONNECT requests that arrive before the client's SETTINGS wait (up to buffered_stream_timeout);
  // beyond this many they are reset with H3_REQUEST_REJECTED.
  size_t max_deferred_requests = 4;
};

struct ClientConfig : CommonConfig {};

}  // namespace wtmesh::wt
