// The agent's end of relayed WebTransport sessions (docs/protocol.md §7): for each session stream
// (kind 0x02) the edge opens, a WebTransport session to the tunnel's h3 upstream (its own QUIC
// connection, TLS checked like --upstream-tls), relayed session to session: every tunnel stream of
// kind 0x03 becomes an upstream stream and every upstream stream a tunnel stream, bytes through
// tunnel::RelayPipe (credit returned only for bytes the other side took), datagrams as §2.1 flows
// named by the relay id, close code + reason and DRAIN as capsules on the session stream.
//
// WtRelayHost holds one tunnel session's relays; EdgeSession hands it the streams of those kinds and
// every later event on them.
#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/udp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "agent/h3_upstream_target.h"
#include "tunnel/wire.h"
#include "tunnel/wt_relay_wire.h"
#include "wt/session.h"

namespace wtmesh::agent {

class WtRelaySession;

class WtRelayHost {
 public:
  // `upstream_for(tunnel_id)`: the tunnel's WebTransport upstream, or nullptr (not an h3 tunnel: the
  // session is refused with 501).
  WtRelayHost(boost::asio::io_context& io, wt::Session& tunnel,
              std::function<const H3UpstreamTarget*(uint32_t)> upstream_for);
  ~WtRelayHost();

  // A stream of kind 0x02 or 0x03 the edge opened, with the bytes after its kind.
  void on_new_stream(wt::StreamId id, tunnel::StreamKind kind, std::span<const uint8_t> rest, bool fin);
  // True when `id` is one of ours: the event was handled.
  bool on_stream_data(wt::StreamId id, std::span<const uint8_t> data, bool fin);
  bool on_stream_reset(wt::StreamId id, std::optional<uint32_t> code);
  bool on_stop_sending(wt::StreamId id, std::optional<uint32_t> code);
  bool on_stream_writable(wt::StreamId id);
  bool on_stream_closed(wt::StreamId id);
  void on_datagram(std::span<const uint8_t> datagram);
  void on_streams_available();
  // The tunnel session is gone: every upstream session is closed.
  void on_tunnel_closed();

  size_t session_count() const { return sessions_.size(); }
  // Relayed streams held until their session's opening arrives (see early_).
  size_t early_stream_count() const { return early_.size(); }

  // A relayed stream can reach the agent before the opening of its session: QUIC does not order
  // streams, and an edge with several workers opens them through different hops. It is held (its
  // bytes not credited) until the opening comes, at most kEarlyWait, kMaxEarlyStreams of them and
  // kMaxEarlyBytes each; then, or when its session is refused, it is refused with code 2.
  static constexpr size_t kMaxEarlyStreams = 32;
  static constexpr size_t kMaxEarlyBytes = 64 * 1024;
  static constexpr std::chrono::milliseconds kEarlyWait{2000};
  // Datagrams dropped either way: for a flow no relayed session has, too big or no room toward the
  // upstream or the edge.
  uint64_t datagrams_dropped() const { return datagrams_dropped_; }

 private:
  friend class WtRelaySession;
  void refuse(wt::StreamId id);
  void bind(wt::StreamId tunnel_stream, uint64_t relay_id) { stream_owner_[tunnel_stream] = relay_id; }
  void unbind(wt::StreamId tunnel_stream) { stream_owner_.erase(tunnel_stream); }
  void finished(uint64_t relay_id);             // destroys it later (never inside its own calls)
  WtRelaySession* owner(wt::StreamId id);       // of a relayed stream
  WtRelaySession* session_of(wt::StreamId id);  // of a session stream
  struct EarlyStream {
    uint64_t relay_id = 0;
    bool uni = false;
    std::vector<uint8_t> bytes;  // after the stream's opening, not yet credited
    bool fin = false;
    std::chrono::steady_clock::time_point since;
  };
  // Holds stream `id` for relay_id; false (and nothing held) when over the caps.
  bool hold_early(wt::StreamId id, uint64_t relay_id, bool uni, std::span<const uint8_t> rest, bool fin);
  // relay_id's session opened (or was refused): its held streams go to it (or are refused).
  void release_early(uint64_t relay_id);
  // Removes and returns the held streams `pred` picks.
  template <typename Pred>
  std::vector<std::pair<wt::StreamId, EarlyStream>> take_early(Pred pred);
  void refuse_early(wt::StreamId id, const EarlyStream& e);
  void expire_early();
  void arm_early_timer(std::chrono::milliseconds after);

  boost::asio::io_context& io_;
  wt::Session& tunnel_;
  std::function<const H3UpstreamTarget*(uint32_t)> upstream_for_;
  std::map<wt::StreamId, tunnel::WtSessionOpenReader> session_heads_;
  std::map<wt::StreamId, tunnel::WtStreamOpenReader> stream_heads_;
  std::map<uint64_t, std::unique_ptr<WtRelaySession>> sessions_;  // by relay id
  std::map<wt::StreamId, uint64_t> session_streams_;              // session stream → relay id
  std::map<wt::StreamId, uint64_t> stream_owner_;                 // relayed tunnel stream → relay id
  std::map<wt::StreamId, EarlyStream> early_;
  boost::asio::steady_timer early_timer_{io_};
  bool early_timer_armed_ = false;
  uint64_t datagrams_dropped_ = 0;
  std::shared_ptr<int> alive_ = std::make_shared<int>(0);
};

}  // namespace wtmesh::agent
