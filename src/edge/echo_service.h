// The edge's diagnostic WebTransport echo service (path /echo): what `wtmesh doctor` and the
// browser test talk to.
//  - bidi stream: every byte and the FIN come back on the same stream;
//  - client uni stream: answered by a server uni stream carrying the same bytes and FIN;
//  - datagram: sent straight back.
// Backpressure end to end: bytes not yet written onward stay here and are consumed (credit returned
// to the peer) only once the outgoing stream took them, so memory per stream is bounded by the
// QUIC stream window, never by what the peer sends.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "wt/session.h"

namespace wtmesh::edge {

class EchoSession final : public wt::SessionHandler {
 public:
  void on_attached(wt::Session& session) override { session_ = &session; }
  void on_incoming_stream(wt::StreamId id, bool bidi) override;
  void on_stream_data(wt::StreamId id, std::span<const uint8_t> data, bool fin) override;
  void on_stream_reset(wt::StreamId id, std::optional<uint32_t> code) override;
  void on_stop_sending(wt::StreamId id, std::optional<uint32_t> code) override;
  void on_stream_writable(wt::StreamId id) override;
  void on_stream_closed(wt::StreamId id) override;
  void on_datagram(std::span<const uint8_t> payload) override;
  void on_closed(uint32_t code, std::string_view reason) override;

  bool closed() const { return closed_; }
  // Open echo pipes (for tests: must drop to 0 as streams end).
  size_t pipe_count() const { return pipes_.size(); }

 private:
  struct Pipe {
    wt::StreamId out = -1;       // where the echo goes (same id for bidi)
    std::vector<uint8_t> held;   // received, not yet accepted by `out`
    bool fin = false;            // peer finished; send FIN after `held`
    bool done = false;           // FIN sent or the pipe was aborted
    bool in_closed = false;      // the transport forgot the incoming stream
    bool out_closed = false;     // ... and the outgoing one (same id for bidi)
  };
  void pump(wt::StreamId in);
  Pipe* pipe_for_output(wt::StreamId out, wt::StreamId* in);

  wt::Session* session_ = nullptr;
  std::map<wt::StreamId, Pipe> pipes_;  // keyed by the incoming stream id
  bool closed_ = false;
};

}  // namespace wtmesh::edge
