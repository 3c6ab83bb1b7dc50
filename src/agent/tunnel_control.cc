#include "agent/tunnel_control.h"

#include "common/varint.h"

namespace wtmesh::agent {

using tunnel::ControlType;

ControlChannel::ControlChannel(ControlOptions options, SteadyTime now)
    : options_(options), heartbeat_(options.ping_interval, options.missed_intervals, now) {}

void ControlChannel::start(const std::vector<TunnelRegistration>& tunnels) {
  append_varint(out_, static_cast<uint64_t>(tunnel::StreamKind::kControl));
  for (const auto& t : tunnels) send_register(t);
}

void ControlChannel::send_register(const TunnelRegistration& t) {
  tunnel::Register reg{t.id, t.type, t.hostname, t.remote_port, t.private_only};
  reg.visitor = t.visitor;
  queue(reg);
}

void ControlChannel::send_unregister(uint32_t id) { queue(tunnel::Unregister{id}); }

uint64_t ControlChannel::send_renew(std::string token) {
  queue(tunnel::Renew{++renew_seq_, std::move(token)});
  return renew_seq_;
}

void ControlChannel::queue(const tunnel::ControlMessage& message) {
  if (failed()) return;
  const auto frame = tunnel::encode(message);
  if (out_.size() + frame.size() > options_.max_output) {
    error_ = "the edge is not reading the control stream (over " + std::to_string(options_.max_output) +
             " bytes queued)";
    return;
  }
  out_.insert(out_.end(), frame.begin(), frame.end());
}

void ControlChannel::output_written(size_t n) {
  out_.erase(out_.begin(), out_.begin() + static_cast<std::ptrdiff_t>(std::min(n, out_.size())));
}

bool ControlChannel::on_data(std::span<const uint8_t> data, SteadyTime now,
                             std::vector<ControlEvent>& events) {
  if (failed()) return false;
  if (!data.empty()) heartbeat_.on_received(now);
  std::vector<tunnel::ControlFrame> frames;
  const auto e = reader_.feed(data, frames);
  for (const auto& f : frames) {
    if (!handle(f, now, events)) return false;
  }
  if (e != tunnel::WireError::kNone) {
    error_ = std::string("bad control frame from the edge: ") + tunnel::to_string(e);
    return false;
  }
  return !failed();
}

bool ControlChannel::handle(const tunnel::ControlFrame& f, SteadyTime now,
                            std::vector<ControlEvent>& events) {
  if (tunnel::sender_of(static_cast<ControlType>(f.type)) == tunnel::ControlSender::kAgent) {
    error_ = "the edge sent an agent-only control frame (" + tunnel::control_name(f.type) + ")";
    return false;
  }
  const tunnel::ControlDecode d = tunnel::decode(f);
  if (!d) {
    error_ = "bad control frame from the edge: " + d.describe();
    return false;
  }
  ControlEvent ev;
  if (const auto* m = d.get<tunnel::Registered>()) {
    ev.kind = ControlEvent::Kind::kRegistered;
    ev.id = m->id;
    ev.hostname = m->hostname;
    ev.url = m->url;
  } else if (const auto* r = d.get<tunnel::Refused>()) {
    ev.kind = ControlEvent::Kind::kRefused;
    ev.id = r->id;
    ev.hostname = r->hostname;
    ev.code = r->code;
    ev.message = r->message;
  } else if (const auto* ping = d.get<tunnel::Ping>()) {
    ev.kind = ControlEvent::Kind::kPing;
    ev.seq = ping->seq;
    queue(tunnel::Pong{ping->seq});
  } else if (const auto* renewed = d.get<tunnel::Renewed>()) {
    ev.kind = ControlEvent::Kind::kRenewed;
    ev.seq = renewed->seq;
    ev.expires = renewed->expires;
    ev.message = renewed->error;
  } else if (const auto* pong = d.get<tunnel::Pong>()) {
    ev.kind = ControlEvent::Kind::kPong;
    ev.seq = pong->seq;
    heartbeat_.on_pong(*pong, now);
  }
  events.push_back(std::move(ev));
  return true;
}

bool ControlChannel::on_tick(SteadyTime now) {
  if (failed()) return false;
  const tunnel::HeartbeatTick tick = heartbeat_.on_tick(now);
  if (tick.timed_out) {
    timed_out_ = true;
    error_ = "heartbeat timeout: nothing from the edge for " +
             std::to_string(
                 std::chrono::duration_cast<std::chrono::seconds>(now - heartbeat_.last_received()).count()) +
             " s";
    return false;
  }
  if (tick.ping) queue(*tick.ping);
  return !failed();
}

}  // namespace wtmesh::agent
