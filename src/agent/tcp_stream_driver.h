// The agent's side of one tcp-stream (docs/protocol.md §4.2): a TCP connection to the tunnel's local
// service per stream the edge opens, bytes relayed both ways with backpressure (the stream's bytes
// are consumed only once written to the socket; the socket is read again only once the stream took
// the previous read), FIN ↔ shutdown(SHUT_WR) both ways, and resets: a local RST or a failed connect
// resets the stream (RESET_STREAM + STOP_SENDING, code 1: upstream failed), a RESET_STREAM or
// STOP_SENDING from the edge resets the local connection (RST). With proxy_protocol the connection
// starts with a PROXY v2 header naming the public client (tunnel/tcp_stream.h).
//
// Connect mode (`wtmesh connect`, docs/protocol.md §4.3) is the same relay the other way round: the
// socket is a local client the agent accepted, the stream one the agent opened; its first bytes are
// the connect head, and the edge's first bytes the connect reply. A refusal is reported through
// `on_refused`, and the local client is reset (it reaches nothing).
#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <functional>
#include <memory>
#include <vector>

#include "agent/upstream_driver.h"
#include "tunnel/connect_stream.h"
#include "tunnel/tcp_relay.h"
#include "tunnel/tcp_stream.h"
#include "wt/session.h"

namespace wtmesh::agent {

struct TcpTarget {
  boost::asio::ip::tcp::endpoint endpoint;  // the local service
  bool proxy_protocol = false;
  size_t read_chunk = 64 * 1024;       // local bytes read at once, at first (the up direction's whole buffer)
  size_t max_read_chunk = 256 * 1024;  // what that buffer grows to while reads fill it (tunnel::TcpRelay)
};

class TcpStreamDriver final : public UpstreamDriver, public std::enable_shared_from_this<TcpStreamDriver> {
 public:
  // `done` runs once, when both directions ended or the stream was reset (true: cleanly).
  TcpStreamDriver(boost::asio::io_context& io, wt::Session& session, wt::StreamId id, const TcpTarget& target,
                  const tunnel::TcpStreamHead& head, std::function<void(bool clean)> done);
  // Connect mode: `client` is connected already; the stream `id` was opened by the agent.
  TcpStreamDriver(wt::Session& session, wt::StreamId id, boost::asio::ip::tcp::socket client, std::string name,
                  std::function<void(const tunnel::ConnectReply&)> on_refused, std::function<void(bool clean)> done);
  ~TcpStreamDriver() override;

  void start(std::span<const uint8_t> early, bool fin) override;
  void on_body(std::span<const uint8_t> data, bool fin) override;
  void on_writable() override { pump_up(); }
  void on_reset(std::optional<uint32_t> code) override;
  void on_stop_sending(std::optional<uint32_t> code) override;
  void on_stream_closed() override;
  void on_session_gone() override;
  bool finished() const override { return done_; }
  wt::StreamId stream_id() const override { return id_; }

 private:
  void pump_up();    // local → stream
  void pump_down();  // stream → local
  void fail_stream(uint32_t code);
  void reset_local();
  void maybe_finish();
  void finish(bool clean);
  // Connect mode: reads the reply off the front of `data`; false when the relay ended.
  bool take_reply(std::span<const uint8_t>& data, bool fin);

  wt::Session* session_;
  wt::StreamId id_;
  TcpTarget target_;
  tunnel::TcpStreamHead head_;
  std::function<void(bool)> done_fn_;
  boost::asio::ip::tcp::socket socket_;
  bool connected_ = false;
  tunnel::TcpRelay relay_;
  bool done_ = false;
  // Connect mode.
  std::optional<std::string> connect_name_;
  std::function<void(const tunnel::ConnectReply&)> on_refused_;
  tunnel::ConnectReplyReader reply_reader_;
};

}  // namespace wtmesh::agent
