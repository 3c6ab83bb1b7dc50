#include "edge/udp_route_flow.h"

#include <spdlog/spdlog.h>

#include <boost/asio/error.hpp>

namespace wtmesh::edge {

namespace asio = boost::asio;
using asio::ip::udp;

UdpRouteFlow::UdpRouteFlow(asio::io_context& io, std::chrono::milliseconds idle_timeout,
                           std::vector<uint8_t>& buffer, UdpFlowClient* client)
    : socket_(io),
      idle_timer_(io),
      idle_timeout_(idle_timeout),
      buffer_(buffer),
      client_(client),
      last_packet_(std::chrono::steady_clock::now()) {}

UdpRouteFlow::~UdpRouteFlow() {
  boost::system::error_code ignored;
  socket_.close(ignored);
}

std::unique_ptr<UdpRouteFlow> UdpRouteFlow::open(asio::io_context& io, const udp::endpoint& target,
                                                 std::chrono::milliseconds idle_timeout,
                                                 std::vector<uint8_t>& buffer, UdpFlowClient* client,
                                                 std::string* error) {
  std::unique_ptr<UdpRouteFlow> f(new UdpRouteFlow(io, idle_timeout, buffer, client));
  boost::system::error_code ec;
  f->socket_.open(target.protocol(), ec);
  if (!ec) f->socket_.non_blocking(true, ec);
  if (!ec) f->socket_.connect(target, ec);  // a local port of its own; only target's packets come back
  if (ec) {
    *error = "cannot open a UDP socket to " + target.address().to_string() + ":" +
             std::to_string(target.port()) + ": " + ec.message();
    return nullptr;
  }
  f->wait_readable();
  f->arm_idle(idle_timeout);
  return f;
}

UdpRouteFlow::Send UdpRouteFlow::send(std::span<const uint8_t> payload) {
  if (payload.size() > kMaxPayload) return Send::kTooBig;
  boost::system::error_code ec;
  socket_.send(asio::buffer(payload.data(), payload.size()), 0, ec);
  if (ec == asio::error::message_size) return Send::kTooBig;
  // connection_refused: an ICMP error from an earlier packet (the service is not up), reported on this
  // send; the packet went out as on the wire, lost as it would be there. would_block and the rest: the
  // packet did not leave (the socket's buffer is full).
  if (ec && ec != asio::error::connection_refused) return Send::kNoRoom;
  ++packets_out_;
  last_packet_ = std::chrono::steady_clock::now();
  return Send::kSent;
}

void UdpRouteFlow::wait_readable() {
  socket_.async_wait(udp::socket::wait_read,
                     [this, alive = std::weak_ptr<int>(alive_)](const boost::system::error_code& ec) {
                       if (alive.expired() || ec == asio::error::operation_aborted) return;
                       read_some();
                     });
}

void UdpRouteFlow::read_some() {
  const std::weak_ptr<int> alive = alive_;
  for (int i = 0; i < kReadBurst; ++i) {
    boost::system::error_code ec;
    const size_t n = socket_.receive(asio::buffer(buffer_.data(), buffer_.size()), 0, ec);
    if (ec == asio::error::would_block || ec == asio::error::try_again) break;
    if (ec) continue;  // an ICMP error reported on this socket (e.g. connection_refused): read on
    ++packets_in_;
    last_packet_ = std::chrono::steady_clock::now();
    client_->on_udp_packet(std::span<const uint8_t>(buffer_.data(), n));
    if (alive.expired()) return;  // the client closed the flow in the call
  }
  wait_readable();
}

void UdpRouteFlow::arm_idle(std::chrono::steady_clock::duration after) {
  idle_timer_.expires_after(after);
  idle_timer_.async_wait([this, alive = std::weak_ptr<int>(alive_)](const boost::system::error_code& ec) {
    if (alive.expired() || ec == asio::error::operation_aborted) return;
    on_idle();
  });
}

void UdpRouteFlow::on_idle() {
  const auto idle_for = std::chrono::steady_clock::now() - last_packet_;
  if (idle_for < idle_timeout_) return arm_idle(idle_timeout_ - idle_for);  // packets moved it meanwhile
  client_->on_udp_flow_end("idle for " + std::to_string(idle_timeout_.count() / 1000) + " s");
}

}  // namespace wtmesh::edge
