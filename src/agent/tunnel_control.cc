#include "agent/tunnel_control.h"

#include <limits>
#include <nlohmann/json.hpp>

#include "common/varint.h"

namespace wtmesh::agent {

using json = nlohmann::json;
using tunnel::ControlType;

ControlChannel::ControlChannel(ControlOptions options, SteadyTime now)
    : options_(options), last_received_(now), next_ping_(now + options.ping_interval) {}

void ControlChannel::start(const std::vector<TunnelRegistration>& tunnels) {
  append_varint(out_, static_cast<uint64_t>(tunnel::StreamKind::kControl));
  for (const auto& t : tunnels) send_register(t);
}

void ControlChannel::send_register(const TunnelRegistration& t) {
  json j = {{"id", t.id}, {"type", t.type}, {"hostname", t.hostname}, {"options", json::object()}};
  queue(ControlType::kRegister, j.dump());
}

void ControlChannel::send_unregister(uint32_t id) {
  queue(ControlType::kUnregister, json{{"id", id}}.dump());
}

void ControlChannel::queue(ControlType type, const std::string& text) {
  if (failed()) return;
  const auto frame = tunnel::encode_control_frame(type, text);
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
  if (!data.empty()) last_received_ = now;
  std::vector<tunnel::ControlFrame> frames;
  const auto e = reader_.feed(data, frames);
  for (const auto& f : frames) {
    if (!handle(f, events)) return false;
  }
  if (e != tunnel::WireError::kNone) {
    error_ = std::string("bad control frame from the edge: ") + tunnel::to_string(e);
    return false;
  }
  return !failed();
}

namespace {

// Reads an unsigned integer member; false when missing or of another type.
template <typename T>
bool get_uint(const json& j, const char* key, T& out) {
  auto it = j.find(key);
  if (it == j.end() || !it->is_number_unsigned()) return false;
  const auto v = it->get<uint64_t>();
  if (v > std::numeric_limits<T>::max()) return false;
  out = static_cast<T>(v);
  return true;
}

std::string get_string(const json& j, const char* key) {
  auto it = j.find(key);
  return it != j.end() && it->is_string() ? it->get<std::string>() : std::string();
}

}  // namespace

bool ControlChannel::handle(const tunnel::ControlFrame& f, std::vector<ControlEvent>& events) {
  const json j = json::parse(f.payload, nullptr, /*allow_exceptions=*/false);
  if (!j.is_object()) {
    error_ = "control frame from the edge is not a JSON object";
    return false;
  }
  ControlEvent ev;
  switch (static_cast<ControlType>(f.type)) {
    case ControlType::kRegistered:
    case ControlType::kRefused:
      if (!get_uint(j, "id", ev.id)) {
        error_ = "REGISTERED/REFUSED from the edge without a numeric id";
        return false;
      }
      ev.hostname = get_string(j, "hostname");
      if (static_cast<ControlType>(f.type) == ControlType::kRegistered) {
        ev.kind = ControlEvent::Kind::kRegistered;
        ev.url = get_string(j, "url");
      } else {
        ev.kind = ControlEvent::Kind::kRefused;
        ev.code = get_string(j, "code");
        ev.message = get_string(j, "message");
      }
      break;
    case ControlType::kPing:
    case ControlType::kPong:
      if (!get_uint(j, "seq", ev.seq)) {
        error_ = "PING/PONG from the edge without a numeric seq";
        return false;
      }
      ev.kind = static_cast<ControlType>(f.type) == ControlType::kPing ? ControlEvent::Kind::kPing
                                                                       : ControlEvent::Kind::kPong;
      if (ev.kind == ControlEvent::Kind::kPing) queue(ControlType::kPong, json{{"seq", ev.seq}}.dump());
      break;
    case ControlType::kRegister:
    case ControlType::kUnregister:
      error_ = "the edge sent an agent-only control frame";
      return false;
  }
  events.push_back(std::move(ev));
  return true;
}

bool ControlChannel::on_tick(SteadyTime now) {
  if (failed()) return false;
  if (now - last_received_ >= options_.ping_interval * options_.missed_intervals) {
    timed_out_ = true;
    error_ = "heartbeat timeout: nothing from the edge for " +
             std::to_string(std::chrono::duration_cast<std::chrono::seconds>(now - last_received_).count()) +
             " s";
    return false;
  }
  if (now >= next_ping_) {
    queue(ControlType::kPing, json{{"seq", ++ping_seq_}}.dump());
    next_ping_ = now + options_.ping_interval;
  }
  return !failed();
}

SteadyTime ControlChannel::next_deadline() const {
  return std::min(next_ping_, last_received_ + options_.ping_interval * options_.missed_intervals);
}

}  // namespace wtmesh::agent
