#include "edge/port_pool.h"

#include <charconv>

#include "tunnel/control.h"

namespace wtmesh::edge {

std::string url_host(const std::string& public_host, const std::string& listen_address) {
  const std::string& host = public_host.empty() ? listen_address : public_host;
  if (host.find(':') != std::string::npos && host.front() != '[') return "[" + host + "]";
  return host;
}

std::optional<std::pair<uint16_t, uint16_t>> parse_port_range(std::string_view text) {
  const size_t dash = text.find('-');
  if (dash == std::string_view::npos) return std::nullopt;
  auto number = [](std::string_view s) -> std::optional<uint32_t> {
    uint32_t v = 0;
    const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
    if (s.empty() || ec != std::errc() || end != s.data() + s.size() || v < 1 || v > 65535)
      return std::nullopt;
    return v;
  };
  const auto first = number(text.substr(0, dash));
  const auto last = number(text.substr(dash + 1));
  if (!first || !last || *first > *last) return std::nullopt;
  return std::pair<uint16_t, uint16_t>(static_cast<uint16_t>(*first), static_cast<uint16_t>(*last));
}

PortPick PortPool::take(uint32_t remote_port, bool private_only,
                        const std::function<bool(uint16_t, std::string*)>& bind) {
  PortPick r;
  auto fail = [&r](std::string_view code, std::string message) {
    r.code = code;
    r.message = std::move(message);
    return r;
  };
  if (private_only) {
    if (remote_port != 0) return fail(tunnel::refusal::kInvalid, "a private tunnel has no public port");
    r.ok = true;
    return r;
  }
  std::string error;
  std::lock_guard lock(mutex_);
  if (remote_port != 0) {
    const uint32_t p = remote_port;
    if (p == tunnel::Register::kBadPort)
      return fail(tunnel::refusal::kInvalid, "remote_port is not a port number");
    if (p < first_ || p > last_)
      return fail(tunnel::refusal::kInvalid,
                  "port " + std::to_string(p) + " is outside the edge's " + what_ + " port range " + range());
    if (held_.count(static_cast<uint16_t>(p)) != 0)
      return fail(tunnel::refusal::kPortTaken, "port " + std::to_string(p) + " is held by another tunnel");
    if (!bind(static_cast<uint16_t>(p), &error))
      return fail(tunnel::refusal::kPortTaken,
                  "port " + std::to_string(p) + " is in use on the edge's host (" + error + ")");
    r.port = static_cast<uint16_t>(p);
  } else {
    const uint32_t size = uint32_t{last_} - first_ + 1;
    for (uint32_t i = 0; i < size && r.port == 0; ++i) {
      const auto p = static_cast<uint16_t>(first_ + (cursor_ + i) % size);
      if (held_.count(p) == 0 && bind(p, &error)) {
        cursor_ = (cursor_ + i + 1) % size;
        r.port = p;
      }
    }
    if (r.port == 0)
      return fail(tunnel::refusal::kLimit, "no free port in the edge's " + what_ + " port range " + range());
  }
  held_.insert(r.port);
  r.ok = true;
  return r;
}

}  // namespace wtmesh::edge
