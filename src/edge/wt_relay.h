// The edge's end of a relayed WebTransport session (docs/protocol.md §7): a public client's session
// to a tunnel hostname, carried to the tunnel's agent, which dials the local service's WebTransport
// server and relays session to session.
//
// EdgeWtRelay is the public session's handler, the WtRelayPeer of the tunnel session and the events
// of its session stream (kind 0x02). Each public stream gets a tunnel stream (kind 0x03) and each
// stream the agent opens a public one (Link); bytes go through tunnel::RelayPipe, so credit goes back
// to a sender only once the other side took the bytes. Datagrams are §2.1 flows named by the relay
// id. Close code and reason and DRAIN travel as capsules on the session stream.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "edge/tunnel_directory.h"
#include "tunnel/relay_pipe.h"
#include "tunnel/wire.h"
#include "wt/capsule.h"
#include "wt/session.h"

namespace wtmesh::edge {

class EdgeWtRelay final : public wt::SessionHandler, public WtRelayPeer, public RequestStreamEvents {
 public:
  // Close codes the relay itself sends the public client (besides the upstream's own close):
  // the agent answered a non-2xx status (code = that status), or the tunnel went away.
  static constexpr uint32_t kCloseTunnelGone = 502;
  // Bytes a direction may hold beyond what the sender's credit allows (it never should).
  static constexpr size_t kMaxHeld = 16 << 20;

  // `tunnels`: the worker's directory (a tunnel on another worker is reached through it).
  EdgeWtRelay(TunnelDirectory& tunnels, std::string client);
  ~EdgeWtRelay() override;

  // Decides a public WebTransport CONNECT for a tunnel hostname: opens the session stream and returns
  // 200 (the agent's answer follows on the session stream: a refusal closes the session with the
  // status as its code), or the status to refuse with (503: the tunnel's session is gone or full of
  // relays, or has no stream now).
  wt::Accept start(const RouteLookup& route, const wt::SessionInfo& info);
  // Nothing left to do: the public session ended and the session stream is done.
  bool finished() const { return public_closed_ && session_stream_done_; }
  size_t link_count() const { return links_.size(); }
  uint64_t datagrams_dropped() const { return datagrams_dropped_; }

  // --- wt::SessionHandler (the public session) ---
  void on_attached(wt::Session& session) override { public_ = &session; }
  void on_incoming_stream(wt::StreamId id, bool bidi) override;
  void on_stream_data(wt::StreamId id, std::span<const uint8_t> data, bool fin) override;
  void on_stream_reset(wt::StreamId id, std::optional<uint32_t> code) override;
  void on_stop_sending(wt::StreamId id, std::optional<uint32_t> code) override;
  void on_stream_writable(wt::StreamId id) override;
  void on_stream_closed(wt::StreamId id) override;
  void on_datagram(std::span<const uint8_t> payload) override;
  void on_drain() override;
  void on_closed(uint32_t code, std::string_view reason) override;

  // --- WtRelayPeer (streams and datagrams from the agent) ---
  RequestStreamEvents* on_agent_stream(const StreamRef& ref, bool uni) override;
  void on_relay_datagram(std::span<const uint8_t> payload) override;
  void on_relay_refused(std::string_view reason) override;

  // --- RequestStreamEvents (the session stream) ---
  void on_response_data(std::span<const uint8_t> data, bool fin) override;
  void on_request_writable() override { flush_session_stream(); }
  void on_stream_aborted(std::optional<uint32_t> code, std::string_view reason) override;
  void on_request_stopped(std::optional<uint32_t> /*code*/) override {}

 private:
  struct Link;
  Link* open_link(wt::StreamId pub, const StreamRef& ref, bool to_agent, bool from_agent,
                  std::vector<uint8_t> prefix);
  void pump_up(Link& link);    // public → tunnel
  void pump_down(Link& link);  // tunnel → public
  void link_data_from_agent(Link& link, std::span<const uint8_t> data, bool fin);
  void abort_link(Link& link, uint32_t code, bool tell_public, bool tell_agent);
  void maybe_finish(Link& link);
  Link* link_for(wt::StreamId pub);
  void on_response_data_capsules(std::span<const uint8_t> data, bool fin);
  void send_capsule(const wt::Capsule& capsule, bool fin);
  void flush_session_stream();
  void close_public(uint32_t code, std::string_view reason);
  void end_relay();

  TunnelDirectory& tunnels_;
  std::string client_;
  wt::Session* public_ = nullptr;
  bool public_closed_ = false;
  RouteLookup route_;
  StreamRef session_ref_;
  uint64_t relay_id_ = 0;
  std::vector<uint8_t> session_out_;  // session stream bytes not taken yet (opening, capsules)
  bool session_fin_ = false;          // FIN queued after session_out_
  bool session_stream_done_ = false;  // our FIN went out (or the stream was aborted)
  bool agent_answered_ = false;
  tunnel::HeadReader<tunnel::ResponseHead> answer_;
  wt::CapsuleParser capsules_;
  std::map<wt::StreamId, std::unique_ptr<Link>> links_;  // by public stream id
  uint64_t datagrams_dropped_ = 0;
};

}  // namespace wtmesh::edge
