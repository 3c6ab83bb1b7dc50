// The public ports of one kind of edge tunnel (TCP, UDP): a range (--tcp-ports, --udp-ports), the ports
// held, and the rules of a REGISTER's `remote_port` / `private` (docs/protocol.md §3.1, §3.2). Binding is
// the caller's (a function that tries one port), so the rules are tested without sockets. The workers of
// an edge share one pool per kind (edge/edge_workers.h): a port another worker's tunnel holds is
// "held by another tunnel" there too. Thread-safe (bind runs under the pool's lock).
#pragma once

#include <cstdint>
#include <functional>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <utility>

namespace wtmesh::edge {

// HOST of the tcp:// and udp:// URLs the edge hands out: `public_host` (--public-host), else the listen
// address; an IPv6 literal in brackets.
std::string url_host(const std::string& public_host, const std::string& listen_address);

// "20000-20999" → {20000, 20999}; nullopt unless 1 <= first <= last <= 65535.
std::optional<std::pair<uint16_t, uint16_t>> parse_port_range(std::string_view text);

struct PortPick {
  bool ok = false;
  uint16_t port = 0;    // ok: the port taken (0: private, none)
  std::string code;     // !ok: a REFUSED code (tunnel::refusal)
  std::string message;  // !ok: a sentence
};

class PortPool {
 public:
  // `what` names the range in refusals: "TCP", "UDP".
  PortPool(uint16_t first, uint16_t last, std::string what)
      : first_(first), last_(last), what_(std::move(what)) {}

  // A port for a REGISTER asking for `remote_port` (0: any; tunnel::Register::kBadPort: not a port)
  // or `private_only`. `bind(port, &error)` tries to open the socket on a port the pool does not hold.
  PortPick take(uint32_t remote_port, bool private_only,
                const std::function<bool(uint16_t, std::string*)>& bind);
  void give_back(uint16_t port) {
    std::lock_guard lock(mutex_);
    held_.erase(port);
  }
  bool held(uint16_t port) const {
    std::lock_guard lock(mutex_);
    return held_.count(port) != 0;
  }
  std::string range() const { return std::to_string(first_) + "-" + std::to_string(last_); }

 private:
  uint16_t first_, last_;
  std::string what_;
  mutable std::mutex mutex_;
  std::set<uint16_t> held_;
  uint32_t cursor_ = 0;  // where the next search for a free port starts (offset in the range)
};

}  // namespace wtmesh::edge
