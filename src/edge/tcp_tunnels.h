// The edge's TCP tunnels (docs/protocol.md §3.1, §4.2): the public ports of REGISTERs of type "tcp",
// taken from a range (--tcp-ports, 20000-20999 by default), and per accepted TCP connection one
// tcp-stream (kind 0x04) on the owning agent's session, relayed both ways:
//   - bytes: the client's reads go onto the stream only as fast as the stream takes them (one read
//     buffer of read_chunk bytes in flight), the agent's bytes go to the client and are consumed
//     (their flow-control credit returned) only once written, so memory per connection is bounded by
//     read_chunk plus the stream's receive window, and a slow side slows the other end to end;
//   - half-close: the client's FIN is the stream's FIN, the stream's FIN is a shutdown(SHUT_WR);
//   - resets: a client RST (or a write error) cancels the stream (RESET_STREAM + STOP_SENDING, code 3),
//     a RESET_STREAM or STOP_SENDING from the agent, or its session ending, resets the client (RST).
// Connections per tunnel are capped (max_connections_per_tunnel): one past the cap is reset at once.
// Private tunnels (publish by name only) get no port. Each connection is a TcpBridge (edge/tcp_bridge.h)
// of a SocketEnd and a StreamEnd on TunnelDirectory, which owns the streams; the wire format is
// tunnel/tcp_stream.h.
#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <utility>

#include "edge/port_pool.h"
#include "edge/tcp_publisher.h"
#include "edge/tunnel_directory.h"
#include "tunnel/tcp_stream.h"

namespace wtmesh::edge {

struct TcpTunnelOptions {
  boost::asio::ip::address listen_address = boost::asio::ip::make_address("127.0.0.1");
  std::string public_host;  // HOST in tcp://HOST:PORT; empty = listen_address
  uint16_t port_min = 20000;
  uint16_t port_max = 20999;
  // The pool of port_min..port_max the workers of one edge share (null: this one's own).
  std::shared_ptr<PortPool> ports;
  // Below the 128 streams an agent grants a session, which all its tunnels share: past those the
  // edge resets a connection at once too (it does not wait for a stream).
  size_t max_connections_per_tunnel = 100;
  size_t read_chunk = 64 * 1024;  // client bytes read at once (the up direction's whole buffer)
};

tunnel::TcpAddress to_tcp_address(const boost::asio::ip::tcp::endpoint& ep);

class TcpTunnels final : public TcpPublisher {
 public:
  TcpTunnels(boost::asio::io_context& io, TunnelDirectory& directory, TcpTunnelOptions options);
  ~TcpTunnels() override;
  TcpTunnels(const TcpTunnels&) = delete;
  TcpTunnels& operator=(const TcpTunnels&) = delete;

  TcpPublishResult publish(const TcpPublishRequest& request) override;
  void unpublish(uint64_t session, uint32_t tunnel_id) override;

  size_t tunnel_count() const { return tunnels_.size(); }
  size_t connection_count() const;
  const TcpTunnelOptions& options() const { return options_; }

  struct Listener;  // one tunnel: its acceptor and its connections (TcpBridges: socket ↔ tcp-stream)

 private:
  void accept(const std::shared_ptr<Listener>& l);
  void start_relay(const std::shared_ptr<Listener>& l, boost::asio::ip::tcp::socket socket);
  // Opens the acceptor on `port`; false (with `error`) when it cannot be bound.
  bool bind(Listener& l, uint16_t port, std::string* error);

  boost::asio::io_context& io_;
  TunnelDirectory& directory_;
  TcpTunnelOptions options_;
  std::map<std::pair<uint64_t, uint32_t>, std::shared_ptr<Listener>> tunnels_;  // (session, tunnel id)
  std::shared_ptr<PortPool> ports_;
  std::shared_ptr<int> alive_ = std::make_shared<int>(0);
};

}  // namespace wtmesh::edge
