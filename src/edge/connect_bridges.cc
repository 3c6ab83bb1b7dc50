#include "edge/connect_bridges.h"

#include <spdlog/spdlog.h>

#include <boost/asio/post.hpp>
#include <charconv>

#include "edge/route_table.h"
#include "tunnel/connect_stream.h"
#include "tunnel/tcp_stream.h"
#include "tunnel/token.h"

namespace wtmesh::edge {

namespace asio = boost::asio;
using asio::ip::tcp;
using tunnel::ConnectStatus;

std::optional<EdgeRoute> parse_edge_route(std::string_view text, std::string_view domain, std::string* error) {
  const size_t eq = text.find('=');
  const size_t colon = text.rfind(':');
  if (eq == std::string_view::npos || colon == std::string_view::npos || colon < eq) {
    *error = "\"" + std::string(text.substr(0, 64)) + "\" is not NAME=HOST:PORT";
    return std::nullopt;
  }
  EdgeRoute r;
  r.name = lower_ascii(text.substr(0, eq));
  if (r.name.find('.') == std::string::npos) r.name += "." + lower_ascii(domain);
  if (!tunnel::is_valid_host_pattern(r.name, /*allow_wildcard=*/false)) {
    *error = "route name \"" + std::string(text.substr(0, eq).substr(0, 64)) + "\" is not a name";
    return std::nullopt;
  }
  std::string_view host = text.substr(eq + 1, colon - eq - 1);
  const std::string_view port_text = text.substr(colon + 1);
  uint32_t port = 0;
  const auto [end, ec] = std::from_chars(port_text.data(), port_text.data() + port_text.size(), port);
  if (port_text.empty() || ec != std::errc() || end != port_text.data() + port_text.size() || port < 1 ||
      port > 65535) {
    *error = "route " + r.name + ": \"" + std::string(port_text.substr(0, 16)) + "\" is not a port";
    return std::nullopt;
  }
  if (host.size() > 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
  if (host == "localhost") host = "127.0.0.1";
  boost::system::error_code bad;
  const auto address = asio::ip::make_address(std::string(host), bad);
  if (bad) {
    *error = "route " + r.name + ": \"" + std::string(host.substr(0, 64)) + "\" is not an IP address";
    return std::nullopt;
  }
  r.target = tcp::endpoint(address, static_cast<uint16_t>(port));
  return r;
}

namespace {

// An agent's connect stream: refused or connected with a connect reply (§4.3).
class AgentConnectClient final : public ConnectClient {
 public:
  explicit AgentConnectClient(TunnelDirectory& d) : end_(std::make_unique<StreamEnd>(d)) {}
  StreamEnd& end() { return *end_; }
  bool gone() const override { return end_->failed(); }
  void refuse(ConnectStatus status, const std::string& message) override {
    end_->refuse(tunnel::encode_connect_reply(status, message));
  }
  std::unique_ptr<BridgeEnd> connected() override {
    end_->set_prefix(tunnel::encode_connect_reply(ConnectStatus::kConnected, ""));
    return std::move(end_);
  }

 private:
  std::unique_ptr<StreamEnd> end_;
};

}  // namespace

struct ConnectBridges::Pending final : RouteEvents {
  Pending(ConnectBridges& o, std::unique_ptr<ConnectClient> c, std::string n)
      : owner(o), client(std::move(c)), name(std::move(n)) {}
  void on_route(const RouteLookup& route) override {
    if (alive.expired()) return;
    if (auto self = weak_self.lock()) owner.on_route(self, route);
  }
  ConnectBridges& owner;
  std::weak_ptr<int> alive;
  std::weak_ptr<Pending> weak_self;
  std::unique_ptr<ConnectClient> client;
  std::string name;
  uint64_t ticket = 0;
  std::unique_ptr<tcp::socket> socket;  // an edge route's connection under way
  uint64_t serial = 0;                  // names this connect to the serving session
};

ConnectBridges::ConnectBridges(asio::io_context& io, TunnelDirectory& directory,
                               std::map<std::string, tcp::endpoint> routes, size_t read_chunk)
    : io_(io), directory_(directory), routes_(std::move(routes)), read_chunk_(read_chunk) {}

ConnectBridges::~ConnectBridges() {
  for (const auto& p : pending_) {
    if (p->ticket != 0) directory_.cancel_route(p->ticket);
  }
  for (const auto& b : std::set(bridges_)) b->abort();
}

RequestStreamEvents* ConnectBridges::on_connect(const StreamRef& ref, std::string_view name) {
  auto client = std::make_unique<AgentConnectClient>(directory_);
  *client->end().ref() = ref;
  RequestStreamEvents* events = &client->end();
  connect(std::move(client), std::string(name));
  return events;
}

void ConnectBridges::connect(std::unique_ptr<ConnectClient> client, std::string name) {
  auto p = std::make_shared<Pending>(*this, std::move(client), std::move(name));
  p->alive = alive_;
  p->weak_self = p;
  p->serial = ++serial_;
  pending_.insert(p);
  if (auto r = routes_.find(p->name); r != routes_.end()) {
    dial(p, r->second);
  } else {
    p->ticket = directory_.route_of(kTcp, p->name, p.get());  // 0 when answered inline
  }
}

void ConnectBridges::on_route(const std::shared_ptr<Pending>& p, const RouteLookup& route) {
  p->ticket = 0;
  if (p->client->gone()) return drop_later(p);
  if (route.kind == RouteLookup::Kind::kUnknown)
    return refuse(p, ConnectStatus::kUnknown, "no tunnel or route is named " + p->name);
  if (route.kind == RouteLookup::Kind::kOffline)
    return refuse(p, ConnectStatus::kOffline, p->name + ": its agent is not connected");
  // The serving agent sees a tcp-stream like a public connection's, with no client address.
  auto server = std::make_unique<StreamEnd>(directory_, tunnel::encode_tcp_stream_head({route.tunnel_id, {}, {}}));
  // Each connect is its own "client" of the serving session: the HTTP per-client cap is not for it.
  const std::string client = "connect " + std::to_string(p->serial);
  const auto st = directory_.open_request(route, client, server.get(), server->ref());
  if (st == TunnelDirectory::OpenStatus::kGone)
    return refuse(p, ConnectStatus::kOffline, p->name + ": its agent is not connected");
  if (st != TunnelDirectory::OpenStatus::kOpened)
    return refuse(p, ConnectStatus::kLimit, p->name + ": its agent's session has no stream to spare");
  bridge(p, std::move(server));
}

void ConnectBridges::dial(const std::shared_ptr<Pending>& p, const tcp::endpoint& target) {
  p->socket = std::make_unique<tcp::socket>(io_);
  p->socket->async_connect(target, [this, alive = std::weak_ptr<int>(alive_), p, target](boost::system::error_code ec) {
    if (alive.expired()) return;
    if (p->client->gone()) return drop_later(p);
    if (ec) {
      return refuse(p, ConnectStatus::kUnreachable,
                    p->name + ": " + target.address().to_string() + ":" + std::to_string(target.port()) +
                        " did not accept the connection (" + ec.message() + ")");
    }
    bridge(p, std::make_unique<SocketEnd>(std::move(*p->socket), read_chunk_));
  });
}

void ConnectBridges::refuse(const std::shared_ptr<Pending>& p, ConnectStatus status, const std::string& message) {
  spdlog::info("connect {}: refused: {}", p->name, message);
  p->client->refuse(status, message);
  drop_later(p);
}

void ConnectBridges::bridge(const std::shared_ptr<Pending>& p, std::unique_ptr<BridgeEnd> server) {
  auto b = std::make_shared<TcpBridge>(p->client->connected(), std::move(server),
                                       [this, alive = std::weak_ptr<int>(alive_)](bool) {
                                         if (alive.expired()) return;
                                         asio::post(io_, [this, alive] {
                                           if (alive.expired()) return;
                                           std::erase_if(bridges_, [](const auto& x) { return x->done(); });
                                         });
                                       });
  bridges_.insert(b);
  drop_later(p);
  b->start();
}

void ConnectBridges::drop_later(const std::shared_ptr<Pending>& p) {
  // Not now: this may run inside one of the pending connect's own calls.
  asio::post(io_, [this, alive = std::weak_ptr<int>(alive_), p] {
    if (!alive.expired()) pending_.erase(p);
  });
}

}  // namespace wtmesh::edge
