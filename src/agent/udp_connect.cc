#include "agent/udp_connect.h"

#include <spdlog/spdlog.h>

namespace wtmesh::agent {

namespace asio = boost::asio;
using asio::ip::udp;

namespace {

constexpr std::chrono::seconds kRefusalHold{1};  // a refused client's packets are dropped this long

std::string client_key(const udp::endpoint& ep) {
  return ep.address().to_string() + " " + std::to_string(ep.port());
}

}  // namespace

UdpConnectPort::UdpConnectPort(asio::io_context& io, std::string name, tunnel::UdpFlowOptions options,
                               std::function<void(const std::string&, const std::string&)> refused)
    : name_(std::move(name)),
      options_(options),
      refused_(std::move(refused)),
      socket_(io),
      table_(options),
      sweep_timer_(io) {}

UdpConnectPort::~UdpConnectPort() {
  set_session(nullptr);
  boost::system::error_code ec;
  socket_.close(ec);
}

bool UdpConnectPort::listen(const udp::endpoint& at, std::string* error) {
  boost::system::error_code ec;
  socket_.open(at.protocol(), ec);
  if (!ec) socket_.bind(at, ec);
  if (!ec) socket_.non_blocking(true, ec);
  if (ec) {
    *error = ec.message();
    socket_.close(ec);
    return false;
  }
  receive();
  arm_sweep();
  return true;
}

udp::endpoint UdpConnectPort::local_endpoint() const {
  boost::system::error_code ec;
  return socket_.local_endpoint(ec);
}

void UdpConnectPort::set_session(EdgeSession* session) {
  if (session == session_) return;
  end_all();
  session_ = session;
}

void UdpConnectPort::end_all() {
  auto flows = std::exchange(flows_, {});
  held_bytes_ = 0;
  for (const auto& [id, f] : flows) {
    table_.remove(id);
    if (session_ != nullptr) session_->end_udp_connect(id);
  }
}

void UdpConnectPort::receive() {
  socket_.async_wait(udp::socket::wait_read,
                     [this, alive = std::weak_ptr<int>(alive_)](boost::system::error_code ec) {
                       if (alive.expired() || ec == asio::error::operation_aborted || !socket_.is_open())
                         return;
                       udp::endpoint from;
                       for (size_t i = 0; i < kMaxPacketsPerWake; ++i) {
                         const size_t n = socket_.receive_from(asio::buffer(buffer_), from, 0, ec);
                         if (ec) break;  // would_block: nothing more; an ICMP report does not end the port
                         on_client_packet(std::span<const uint8_t>(buffer_.data(), n), from);
                         if (alive.expired()) return;
                       }
                       receive();
                     });
}

void UdpConnectPort::on_client_packet(std::span<const uint8_t> payload, const udp::endpoint& from) {
  const auto now = std::chrono::steady_clock::now();
  const std::string key = client_key(from);
  if (const auto flow = table_.find(key, now)) {
    auto& f = flows_[*flow];
    if (f.open) return send_to_edge(*flow, payload);
    // The reply is not here yet: a few packets wait for it, no more.
    if (f.held.size() >= kMaxHeldPackets || held_bytes_ + payload.size() > kMaxHeldBytes) {
      ++drops_.queue_full;
      return;
    }
    held_bytes_ += payload.size();
    f.held.emplace_back(payload.begin(), payload.end());
    return;
  }
  if (auto held = refused_until_.find(key); held != refused_until_.end()) {
    if (now < held->second) return;  // refused a moment ago: dropped without asking again
    refused_until_.erase(held);
  }
  if (session_ == nullptr) {
    ++drops_.queue_full;  // no session to the edge right now
    return;
  }
  if (table_.full()) {
    if (drops_.flow_cap == 0)
      spdlog::info("connect {} --udp: flow cap of {} reached: packets of new clients are dropped", name_,
                   options_.max_flows);
    ++drops_.flow_cap;
    return;
  }
  const auto flow = session_->open_udp_connect(name_, this);
  if (!flow) {
    ++drops_.queue_full;  // the session has no stream to spare now
    return;
  }
  table_.add(*flow, key, now);
  Flow& f = flows_[*flow];
  f.client = from;
  if (held_bytes_ + payload.size() <= kMaxHeldBytes) {
    held_bytes_ += payload.size();
    f.held.emplace_back(payload.begin(), payload.end());
  } else {
    ++drops_.queue_full;
  }
  spdlog::debug("connect {} --udp: flow {} opened for {}:{}", name_, *flow, from.address().to_string(),
                from.port());
}

void UdpConnectPort::send_to_edge(uint64_t flow_id, std::span<const uint8_t> payload) {
  if (session_ == nullptr) return;
  switch (session_->send_udp_connect(flow_id, payload)) {
    case EdgeSession::UdpSend::kSent:
      return;
    case EdgeSession::UdpSend::kTooBig:
      ++drops_.too_big;
      return;
    case EdgeSession::UdpSend::kNoRoom:
      ++drops_.queue_full;
      return;
    case EdgeSession::UdpSend::kNotOpen:
      ++drops_.unknown_flow;
      return;
  }
}

void UdpConnectPort::on_udp_reply(uint64_t flow_id, const tunnel::ConnectReply& reply) {
  auto it = flows_.find(flow_id);
  if (it == flows_.end()) return;
  if (reply.connected()) {
    it->second.open = true;
    const auto held = std::exchange(it->second.held, {});
    for (const auto& p : held) {
      held_bytes_ -= p.size();
      send_to_edge(flow_id, p);
    }
    return;
  }
  const auto now = std::chrono::steady_clock::now();
  if (refused_until_.size() < options_.max_flows)
    refused_until_[client_key(it->second.client)] = now + kRefusalHold;
  forget(flow_id);
  if (!last_refusal_report_ || now - *last_refusal_report_ >= std::chrono::seconds(1)) {
    last_refusal_report_ = now;
    if (refused_) {
      refused_(std::string(tunnel::to_string(static_cast<tunnel::ConnectStatus>(reply.status))),
               reply.message);
    }
  }
}

void UdpConnectPort::on_udp_packet(uint64_t flow_id, std::span<const uint8_t> payload) {
  auto it = flows_.find(flow_id);
  if (it == flows_.end()) {
    ++drops_.unknown_flow;
    return;
  }
  table_.touch(flow_id, std::chrono::steady_clock::now());
  boost::system::error_code ec;
  socket_.send_to(asio::buffer(payload.data(), payload.size()), it->second.client, 0, ec);
  if (ec == asio::error::would_block || ec == asio::error::try_again || ec == asio::error::no_buffer_space)
    ++drops_.queue_full;
}

void UdpConnectPort::on_udp_end(uint64_t flow_id) { forget(flow_id); }

void UdpConnectPort::forget(uint64_t flow_id) {
  if (auto it = flows_.find(flow_id); it != flows_.end()) {
    for (const auto& p : it->second.held) held_bytes_ -= p.size();
    flows_.erase(it);
  }
  table_.remove(flow_id);
}

void UdpConnectPort::arm_sweep() {
  if (sweep_armed_) return;
  sweep_armed_ = true;
  const auto period = std::min<std::chrono::milliseconds>(std::chrono::seconds(1), options_.idle_timeout / 4);
  sweep_timer_.expires_after(std::max(period, std::chrono::milliseconds(10)));
  sweep_timer_.async_wait([this, alive = std::weak_ptr<int>(alive_)](boost::system::error_code ec) {
    if (ec || alive.expired()) return;
    sweep_armed_ = false;
    sweep();
    arm_sweep();
  });
}

void UdpConnectPort::sweep() {
  const auto now = std::chrono::steady_clock::now();
  const auto gone = table_.expire(now);
  for (const uint64_t id : gone) {
    forget(id);
    if (session_ != nullptr) session_->end_udp_connect(id);
  }
  if (!gone.empty())
    spdlog::info("connect {} --udp: {} idle flow(s) expired, {} open", name_, gone.size(), flows_.size());
  std::erase_if(refused_until_, [&](const auto& kv) { return kv.second <= now; });
  if (drops_.total() != logged_drops_) {
    logged_drops_ = drops_.total();
    spdlog::info("connect {} --udp: dropped so far: {}", name_, drops_.describe());
  }
}

}  // namespace wtmesh::agent
