// wtmesh: one binary, subcommands. Errors at the command line are sentences, never stack traces.
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <iostream>

#include "agent/doctor.h"
#include "cli/agent_commands.h"
#include "cli/credential_commands.h"
#include "cli/edge_serve.h"
#include "cli/listen_address.h"
#include "cli/login_commands.h"
#include "cli/yaml_config.h"
#include "common/allocator.h"
#include "common/process_limits.h"
#include "edge/edge_server.h"
#include "edge/edge_workers.h"
#include "tunnel/token.h"

namespace {

namespace asio = boost::asio;
using namespace wtmesh;

int whole_seconds(std::chrono::milliseconds d) {
  return static_cast<int>(std::chrono::duration_cast<std::chrono::seconds>(d).count());
}

struct EdgeArgs {
  std::string listen = "127.0.0.1:4433";
  std::string domain = "localhost";
  std::string state_dir = ".wtmesh/edge";
  std::string cert, key;
  std::vector<std::string> allow_origins;
  bool echo = false;
  int idle_timeout_s = 30;
  uint64_t max_streams = 128;
  std::string http_listen;   // optional plain-HTTP public listener
  std::string admin_listen;  // optional admin listener (GET /metrics, GET /ready)
  bool no_http2 = false;
  bool no_steering = false;
  bool no_http3 = false;
  size_t max_udp_payload = 1452;
  // Against unauthenticated public clients: the counts are set in place, the durations in seconds
  // (their defaults are PublicLimits' own).
  edge::PublicLimits limits;
  int http_idle_timeout_s = whole_seconds(limits.idle_timeout);
  int websocket_idle_timeout_s = whole_seconds(limits.websocket_idle_timeout);
  int handshake_timeout_s = whole_seconds(limits.handshake_timeout);
  int header_timeout_s = whole_seconds(limits.header_timeout);
  int body_timeout_s = whole_seconds(limits.body_timeout);
  std::string public_host;  // HOST in the tcp:// and udp:// URLs agents print; empty: the listen address
  std::string tcp_ports = "20000-20999";
  size_t tcp_max_connections = edge::TcpTunnelOptions{}.max_connections_per_tunnel;
  std::vector<std::string> routes;      // --route NAME=HOST:PORT
  std::vector<std::string> udp_routes;  // --udp-route NAME=HOST:PORT
  size_t max_connects = edge::EdgeOptions{}.max_connect_streams;
  bool require_visitor_auth = false;
  std::string visitor_auth_min = "none";
  unsigned challenge_bits = edge::kDefaultChallengeBits;
  size_t max_sessions_per_subject = edge::EdgeOptions{}.max_sessions_per_subject;
  size_t max_tunnels_per_subject = edge::EdgeOptions{}.max_tunnels_per_subject;
  std::string udp_ports = "21000-21999";
  size_t udp_max_flows = tunnel::UdpFlowOptions{}.max_flows;
  int udp_idle_timeout_s = whole_seconds(tunnel::UdpFlowOptions{}.idle_timeout);
  std::string session_token_ttl = "5m";
  // The graceful drain on SIGTERM/SIGINT (edge/drain_plan.h): its whole length, and the longest
  // handoff inside it; "0s" grace: close at once, as before.
  std::string drain_grace = "30s";
  std::string drain_handoff = "10s";
  int session_deadline_s = whole_seconds(edge::EdgeOptions{}.session_deadline);
  size_t quic_max_connections_per_ip = quic::AddressLimitOptions{}.max_connections_per_address;
  double quic_handshakes_per_ip = quic::AddressLimitOptions{}.handshakes_per_second;
  double quic_handshake_burst = quic::AddressLimitOptions{}.handshake_burst;
  size_t quic_retry_above = edge::EdgeOptions{}.quic_retry_above;
  size_t quic_max_connections = edge::EdgeOptions{}.quic_max_connections;
  // Threads, each with its own sockets on the same ports (edge/edge_workers.h): one per core this
  // process may use (its affinity mask and cgroup quota, common/process_limits.h).
  unsigned workers = std::min(usable_cores(), edge::EdgeWorkers::kMaxWorkers);
};

// --tcp-ports / --udp-ports: FIRST-LAST into `min`/`max` (true), or "none" (false).
bool port_range_option(const std::string& flag, const std::string& text, uint16_t& min, uint16_t& max) {
  if (text == "none") return false;
  const auto range = edge::parse_port_range(text);
  if (!range)
    throw std::runtime_error(flag + " \"" + text + "\" is not a range FIRST-LAST of ports 1-65535, nor none");
  min = range->first;
  max = range->second;
  return true;
}

// "30s", "500ms", "2m", "0" → milliseconds (at most an hour); nullopt for anything else.
std::optional<std::chrono::milliseconds> parse_drain_duration(const std::string& text) {
  size_t digits = 0;
  while (digits < text.size() && digits < 7 && text[digits] >= '0' && text[digits] <= '9') ++digits;
  if (digits == 0) return std::nullopt;
  const long long n = std::stoll(text.substr(0, digits));
  const std::string unit = text.substr(digits);
  long long ms = 0;
  if (unit == "ms") {
    ms = n;
  } else if (unit == "s" || (unit.empty() && n == 0)) {
    ms = n * 1000;
  } else if (unit == "m") {
    ms = n * 60'000;
  } else {
    return std::nullopt;
  }
  if (ms > 3'600'000) return std::nullopt;
  return std::chrono::milliseconds(ms);
}

int run_edge(const EdgeArgs& a) {
  std::string error;
  auto listen = cli::parse_listen_address(a.listen, &error);
  if (!listen) throw std::runtime_error(error);
  edge::EdgeOptions opts;
  opts.listen = *listen;
  opts.domain = a.domain;
  opts.state_dir = a.state_dir;
  if (!a.cert.empty()) opts.cert_file = a.cert;
  if (!a.key.empty()) opts.key_file = a.key;
  opts.allowed_origins = a.allow_origins;
  opts.echo = a.echo;
  opts.limits.idle_timeout = std::chrono::seconds(a.idle_timeout_s);
  opts.limits.max_streams_bidi = a.max_streams;
  opts.limits.max_streams_uni = a.max_streams;
  opts.limits.max_udp_payload = a.max_udp_payload;
  if (!a.http_listen.empty()) {
    auto http = cli::parse_listen_address(a.http_listen, &error);
    if (!http) throw std::runtime_error("--http-listen: " + error);
    opts.http_listen = asio::ip::tcp::endpoint(http->address(), http->port());
  }
  if (!a.admin_listen.empty()) {
    auto admin = cli::parse_listen_address(a.admin_listen, &error);
    if (!admin) throw std::runtime_error("--admin-listen: " + error);
    opts.admin_listen = asio::ip::tcp::endpoint(admin->address(), admin->port());
  }
  opts.public_limits = a.limits;
  opts.public_limits.idle_timeout = std::chrono::seconds(a.http_idle_timeout_s);
  opts.public_limits.websocket_idle_timeout = std::chrono::seconds(a.websocket_idle_timeout_s);
  opts.public_limits.handshake_timeout = std::chrono::seconds(a.handshake_timeout_s);
  opts.public_limits.header_timeout = std::chrono::seconds(a.header_timeout_s);
  opts.public_limits.body_timeout = std::chrono::seconds(a.body_timeout_s);
  opts.http2 = !a.no_http2;
  opts.steer_connections = !a.no_steering;
  opts.http3 = !a.no_http3;
  opts.tcp_tunnels = port_range_option("--tcp-ports", a.tcp_ports, opts.tcp.port_min, opts.tcp.port_max);
  opts.tcp.max_connections_per_tunnel = a.tcp_max_connections;
  if (!a.public_host.empty()) {
    boost::system::error_code ec;
    asio::ip::make_address(a.public_host, ec);
    if (ec && !tunnel::is_valid_host_pattern(a.public_host, /*allow_wildcard=*/false))
      throw std::runtime_error("--public-host \"" + a.public_host.substr(0, 64) +
                               "\" is neither a DNS name nor an IP address");
    opts.tcp.public_host = opts.udp.public_host = a.public_host;
  }
  for (const auto& text : a.routes) {
    auto r = edge::parse_edge_route(text, a.domain, &error);
    if (!r) throw std::runtime_error("--route: " + error);
    opts.routes.push_back(std::move(*r));
  }
  for (const auto& text : a.udp_routes) {
    auto r = edge::parse_edge_route(text, a.domain, &error);
    if (!r) throw std::runtime_error("--udp-route: " + error);
    opts.udp_routes.push_back(std::move(*r));
  }
  opts.max_connect_streams = a.max_connects;
  opts.require_visitor_auth = a.require_visitor_auth;
  const auto min = tunnel::parse_visitor_auth_min(a.visitor_auth_min);
  if (!min) {
    throw std::runtime_error("--visitor-auth-min \"" + a.visitor_auth_min +
                             "\" is not none, any, challenge or credentials");
  }
  opts.visitor_auth_min = *min;
  if (a.challenge_bits > edge::kMaxChallengeBits)
    throw std::runtime_error("--challenge-bits is at most " + std::to_string(edge::kMaxChallengeBits));
  opts.challenge_bits = a.challenge_bits;
  opts.max_sessions_per_subject = a.max_sessions_per_subject;
  opts.max_tunnels_per_subject = a.max_tunnels_per_subject;
  opts.session_deadline = std::chrono::seconds(a.session_deadline_s);
  opts.quic_address_limits.max_connections_per_address = a.quic_max_connections_per_ip;
  opts.quic_address_limits.handshakes_per_second = a.quic_handshakes_per_ip;
  opts.quic_address_limits.handshake_burst = a.quic_handshake_burst;
  opts.quic_retry_above = a.quic_retry_above;
  opts.quic_max_connections = a.quic_max_connections;
  opts.udp_tunnels = port_range_option("--udp-ports", a.udp_ports, opts.udp.port_min, opts.udp.port_max);
  opts.udp.flows.max_flows = a.udp_max_flows;
  opts.udp.flows.idle_timeout = std::chrono::seconds(a.udp_idle_timeout_s);
  const auto ttl = tunnel::parse_duration(a.session_token_ttl);
  if (!ttl) {
    throw std::runtime_error("--session-token-ttl \"" + a.session_token_ttl +
                             "\" is not a duration such as 30s or 5m (at least 10s, at most 30d)");
  }
  opts.session_token_ttl = *ttl;
  edge::DrainPlan::Options drain;
  const auto grace = parse_drain_duration(a.drain_grace);
  const auto handoff = parse_drain_duration(a.drain_handoff);
  if (!grace || !handoff) {
    throw std::runtime_error("--drain-grace / --drain-handoff \"" +
                             (grace ? a.drain_handoff : a.drain_grace) +
                             "\" is not a duration such as 30s, 500ms or 2m (at most 1h)");
  }
  drain.grace = *grace;
  drain.handoff = *handoff;

  // Every public connection, QUIC socket and certificate file is a descriptor.
  const OpenFileLimit files = raise_open_file_limit();
  if (files.soft < a.limits.max_connections + 1024) {
    spdlog::warn("edge: only {} open files allowed (ulimit -n), fewer than --max-connections {} needs",
                 files.soft, a.limits.max_connections);
  }

  return cli::serve_edge(opts, a.workers, drain,
                         cli::EdgePrintout{a.echo, a.domain, a.public_host, a.tcp_ports, a.udp_ports});
}

}  // namespace

int main(int argc, char** argv) {
  wtmesh::tune_allocator();
  spdlog::set_default_logger(spdlog::stderr_color_mt("wtmesh"));
  CLI::App app{"wtmesh: localhost tunnels and a proxy mesh over WebTransport (HTTP/3)"};
  app.require_subcommand(1);
  std::string log_level = "info";
  app.add_option("--log-level", log_level, "trace, debug, info, warn, error")->capture_default_str();

  EdgeArgs edge_args;
  auto* edge_cmd = app.add_subcommand("edge", "run an edge: the public side of the tunnels");
  std::string edge_config;
  edge_cmd->add_option("--config", edge_config,
                       "a YAML file of edge options: keys are the long option names without dashes "
                       "(listen: 0.0.0.0:443, route: [db=10.0.0.5:5432]); the command line wins");
  edge_cmd
      ->add_option("--workers", edge_args.workers,
                   "threads serving the edge, each with its own sockets on the same ports (SO_REUSEPORT); "
                   "public requests reach an agent on any of them; default: the cores this process may use "
                   "(docs/architecture.md, Workers)")
      ->check(CLI::Range(1u, wtmesh::edge::EdgeWorkers::kMaxWorkers))
      ->capture_default_str();
  edge_cmd
      ->add_option("--listen", edge_args.listen,
                   "address:port for QUIC (UDP) and public HTTPS (TCP); port 0 picks one")
      ->capture_default_str();
  edge_cmd->add_option("--domain", edge_args.domain, "domain of the tunnels' hostnames (NAME.DOMAIN)")
      ->capture_default_str();
  edge_cmd->add_option("--state-dir", edge_args.state_dir, "where certificates and keys are kept")
      ->capture_default_str();
  edge_cmd->add_option("--cert", edge_args.cert, "PEM certificate chain to use instead of the local CA's");
  edge_cmd->add_option("--key", edge_args.key, "PEM private key for --cert");
  edge_cmd->add_option("--allow-origin", edge_args.allow_origins,
                       "browser origin allowed to open sessions (repeatable; default: any)");
  edge_cmd->add_flag("--echo", edge_args.echo,
                     "serve the diagnostic WebTransport echo at /echo (for wtmesh doctor and browser "
                     "checks; off by default: it answers anyone whose Origin --allow-origin admits)");
  edge_cmd->add_option("--idle-timeout", edge_args.idle_timeout_s, "QUIC idle timeout in seconds")
      ->capture_default_str()
      ->check(CLI::Range(1, 3600));
  edge_cmd->add_option("--max-streams", edge_args.max_streams, "concurrent streams a peer may open, per type")
      ->capture_default_str()
      ->check(CLI::Range(1, 100000));
  edge_cmd
      ->add_option(
          "--max-udp-payload", edge_args.max_udp_payload,
          "largest QUIC packet to send; PMTU discovery probes up to it (larger cuts CPU on loopback)")
      ->capture_default_str()
      ->check(CLI::Range(1200, 65507));
  edge_cmd->add_option("--http-listen", edge_args.http_listen,
                       "address:port for an additional plain-HTTP public listener (default: none)");
  edge_cmd->add_option("--admin-listen", edge_args.admin_listen,
                       "admin listener ADDRESS:PORT serving GET /metrics (Prometheus text) and GET /ready; "
                       "off unless given (keep it on loopback or a private network)");
  edge_cmd->add_flag("--no-http2", edge_args.no_http2,
                     "public listeners speak HTTP/1.1 only (no ALPN h2, no h2c prior knowledge)");
  edge_cmd->add_flag(
      "--no-steering", edge_args.no_steering,
      "with --workers: serve each public TCP connection on the worker that accepted it instead of "
      "handing it to the worker whose agent holds its name (spreads one busy tunnel's TLS over "
      "every core, at a hop between threads per request)");
  edge_cmd->add_flag("--no-http3", edge_args.no_http3,
                     "no public HTTP/3 on the UDP port (agents' sessions only) and no Alt-Svc on HTTPS");
  edge_cmd
      ->add_option("--http-idle-timeout", edge_args.http_idle_timeout_s,
                   "seconds a public HTTP connection may stay idle (no bytes either way)")
      ->capture_default_str()
      ->check(CLI::Range(1, 86400));
  edge_cmd
      ->add_option("--websocket-idle-timeout", edge_args.websocket_idle_timeout_s,
                   "seconds a public connection upgraded to WebSocket may stay idle (no bytes either way)")
      ->capture_default_str()
      ->check(CLI::Range(1, 86400));
  edge_cmd
      ->add_option("--max-connections", edge_args.limits.max_connections,
                   "public TCP connections the edge keeps open")
      ->capture_default_str()
      ->check(CLI::Range(1, 1'000'000));
  edge_cmd
      ->add_option("--max-connections-per-ip", edge_args.limits.max_connections_per_ip,
                   "public TCP connections one client address (IPv6: one /64) may hold; 0 = no cap")
      ->capture_default_str()
      ->check(CLI::Range(0, 1'000'000));
  edge_cmd
      ->add_option("--tls-handshakes-per-ip", edge_args.limits.tls_handshakes_per_ip,
                   "TLS handshakes per second one client address (IPv6: one /64) may start on the public "
                   "HTTPS port, after a burst of --tls-handshake-burst (beyond: the connection is reset "
                   "before any crypto); 0 with a burst of 0 = no limit")
      ->capture_default_str()
      ->check(CLI::Range(0.0, 1'000'000.0));
  edge_cmd
      ->add_option("--tls-handshake-burst", edge_args.limits.tls_handshake_burst,
                   "TLS handshakes one client address may start at once on the public HTTPS port")
      ->capture_default_str()
      ->check(CLI::Range(0.0, 1'000'000.0));
  edge_cmd
      ->add_option("--handshake-timeout", edge_args.handshake_timeout_s,
                   "seconds a public client has to finish its TLS handshake")
      ->capture_default_str()
      ->check(CLI::Range(1, 3600));
  edge_cmd
      ->add_option("--header-timeout", edge_args.header_timeout_s,
                   "seconds a request's header section may take (the first from the connection's start)")
      ->capture_default_str()
      ->check(CLI::Range(1, 3600));
  edge_cmd
      ->add_option("--body-timeout", edge_args.body_timeout_s,
                   "seconds a request body may stall before the edge answers 408")
      ->capture_default_str()
      ->check(CLI::Range(1, 3600));
  edge_cmd
      ->add_option("--body-min-rate", edge_args.limits.body_min_rate,
                   "bytes per second a request body must average past --body-timeout; 0 = none")
      ->capture_default_str();
  edge_cmd
      ->add_option("--max-streams-per-client", edge_args.limits.max_streams_per_client,
                   "requests one client address may have in flight to one tunnel (over it: 429); 0 = no cap")
      ->capture_default_str();

  edge_cmd->add_option("--public-host", edge_args.public_host,
                       "the name (or address) clients reach this edge by, printed in tcp:// and udp:// URLs "
                       "(default: the listen address)");
  edge_cmd
      ->add_option("--tcp-ports", edge_args.tcp_ports,
                   "ports for TCP tunnels on the listen address, FIRST-LAST, or none")
      ->capture_default_str();
  edge_cmd
      ->add_option("--tcp-max-connections", edge_args.tcp_max_connections,
                   "open connections one TCP tunnel may have (more are reset)")
      ->capture_default_str()
      ->check(CLI::Range(1, 100000));
  edge_cmd->add_option("--route", edge_args.routes,
                       "NAME=HOST:PORT: a name `wtmesh connect` reaches through a TCP connection the edge "
                       "opens itself (repeatable; NAME means NAME.DOMAIN)");
  edge_cmd->add_option(
      "--udp-route", edge_args.udp_routes,
      "NAME=HOST:PORT: a name `wtmesh connect --udp` and browsers reach through a UDP socket "
      "the edge opens itself per flow (repeatable; flows capped by --udp-max-flows)");
  edge_cmd->add_flag(
      "--require-visitor-auth", edge_args.require_visitor_auth,
      "refuse http tunnels that bring no visitor auth (--basic-auth, --require-token, --allow-cidr or "
      "--challenge on the agent); the same as --visitor-auth-min any");
  edge_cmd
      ->add_option("--visitor-auth-min", edge_args.visitor_auth_min,
                   "the least visitor auth every http tunnel must bring: none, any, challenge (the browser "
                   "check or required credentials), credentials (a password or visitor token, no check page "
                   "instead)")
      ->capture_default_str();
  edge_cmd
      ->add_option("--challenge-bits", edge_args.challenge_bits,
                   "work of the --challenge page: leading zero bits of a SHA-256 (2^N hashes in the browser)")
      ->capture_default_str();
  edge_cmd
      ->add_option("--max-connects-per-session", edge_args.max_connects,
                   "connect streams one agent session may hold at once (more are refused)")
      ->capture_default_str()
      ->check(CLI::Range(1, 100000));
  edge_cmd
      ->add_option("--max-sessions-per-subject", edge_args.max_sessions_per_subject,
                   "live agent sessions one token subject may hold on this edge (more get 429)")
      ->capture_default_str()
      ->check(CLI::Range(1, 100000));
  edge_cmd
      ->add_option("--max-tunnels-per-subject", edge_args.max_tunnels_per_subject,
                   "tunnels one token subject may hold across its sessions (more are refused \"limit\")")
      ->capture_default_str()
      ->check(CLI::Range(1, 100000));
  edge_cmd
      ->add_option("--session-deadline", edge_args.session_deadline_s,
                   "seconds a QUIC connection may stay open after its handshake without opening a "
                   "WebTransport session or sending a request (then it is closed, H3_NO_ERROR)")
      ->capture_default_str()
      ->check(CLI::Range(1, 3600));
  edge_cmd
      ->add_option("--quic-max-connections-per-ip", edge_args.quic_max_connections_per_ip,
                   "live QUIC connections one client address (IPv6: one /64) may hold; beyond, its Initials "
                   "get CONNECTION_CLOSE CONNECTION_REFUSED")
      ->capture_default_str()
      ->check(CLI::Range(1, 100000));
  edge_cmd
      ->add_option("--quic-handshakes-per-ip", edge_args.quic_handshakes_per_ip,
                   "new QUIC connections per second one client address may start, after a burst of "
                   "--quic-handshake-burst (beyond: CONNECTION_REFUSED)")
      ->capture_default_str()
      ->check(CLI::Range(0.01, 100000.0));
  edge_cmd
      ->add_option("--quic-handshake-burst", edge_args.quic_handshake_burst,
                   "new QUIC connections one client address may start at once")
      ->capture_default_str()
      ->check(CLI::Range(1.0, 100000.0));
  edge_cmd
      ->add_option("--quic-max-connections", edge_args.quic_max_connections,
                   "live QUIC connections the edge holds in all (agent sessions, HTTP/3 visitors, "
                   "handshakes); beyond, Initials get CONNECTION_CLOSE CONNECTION_REFUSED")
      ->capture_default_str()
      ->check(CLI::Range(1, 1000000));
  edge_cmd
      ->add_option("--quic-retry-above", edge_args.quic_retry_above,
                   "answer QUIC Initials without a token with a Retry (address validation) while this many "
                   "QUIC connections are open; 0: always")
      ->capture_default_str()
      ->check(CLI::Range(0, 1000000));
  edge_cmd
      ->add_option("--udp-ports", edge_args.udp_ports,
                   "ports for UDP tunnels on the listen address, FIRST-LAST, or none")
      ->capture_default_str();
  edge_cmd
      ->add_option("--udp-max-flows", edge_args.udp_max_flows,
                   "client addresses (flows) one UDP tunnel may serve at once (packets of more are dropped)")
      ->capture_default_str()
      ->check(CLI::Range(1, 1000000));
  edge_cmd
      ->add_option("--udp-idle-timeout", edge_args.udp_idle_timeout_s,
                   "seconds without a packet after which a UDP tunnel's flow is forgotten")
      ->capture_default_str()
      ->check(CLI::Range(1, 86400));

  edge_cmd
      ->add_option("--drain-grace", edge_args.drain_grace,
                   "on SIGTERM/SIGINT: how long requests under way may take to finish before the edge "
                   "closes (agents move to another edge first); 0s: close at once; a second signal "
                   "closes at once")
      ->capture_default_str();
  edge_cmd
      ->add_option("--drain-handoff", edge_args.drain_handoff,
                   "within the drain: the longest wait for agents to register on another edge before "
                   "the public side stops taking new requests")
      ->capture_default_str();
  edge_cmd
      ->add_option("--session-token-ttl", edge_args.session_token_ttl,
                   "the longest lifetime a credential's session token may have (10s..30d); agents renew "
                   "theirs inside the session before it ends")
      ->capture_default_str();

  agent::DoctorOptions doctor;
  std::string doctor_ca;
  auto* doctor_cmd = app.add_subcommand("doctor", "check an edge end to end and report timings");
  doctor_cmd->add_option("--edge", doctor.edge_url,
                         "the edge, https://HOST:PORT (default: the one `wtmesh login` stored)");
  doctor_cmd->add_option(
      "--ca", doctor_ca,
      "CA certificate to trust (e.g. STATE_DIR/ca.pem; default: the login's for its edge)");
  std::string doctor_transport = "auto";
  doctor_cmd
      ->add_option(
          "--transport", doctor_transport,
          "quic, h2 (WebTransport over HTTP/2 on TCP + TLS) or auto (QUIC, h2 when the QUIC handshake "
          "has not completed within 2 s); the report names the one used")
      ->capture_default_str()
      ->check(CLI::IsMember({"quic", "h2", "auto"}));
  doctor_cmd->add_option("--rounds", doctor.rounds, "round trips per check")
      ->capture_default_str()
      ->check(CLI::Range(1, 1000));

  // token, http, agent (cli/agent_commands.cc).
  cli::AgentCommands agent_commands;
  cli::add_agent_commands(app, agent_commands);
  // credential, revoke (cli/credential_commands.cc).
  cli::CredentialCommands credential_commands;
  cli::add_credential_commands(app, credential_commands);
  // login, logout (cli/login_commands.cc).
  cli::LoginCommands login_commands;
  cli::add_login_commands(app, login_commands);

  try {
    app.parse(argc, argv);
    // CLI11 2.1 reads config files for the top-level command only: the edge applies its own.
    if (*edge_cmd && !edge_config.empty()) cli::apply_yaml_config(*edge_cmd, edge_config);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  spdlog::set_level(spdlog::level::from_str(log_level));

  try {
    if (*edge_cmd) return run_edge(edge_args);
    if (auto status = cli::run_agent_command(agent_commands)) return *status;
    if (auto status = cli::run_credential_command(credential_commands)) return *status;
    if (auto status = cli::run_login_command(login_commands)) return *status;
    if (*doctor_cmd) {
      if (const auto login = cli::stored_login();
          login && (doctor.edge_url.empty() || doctor.edge_url == login->config.edge)) {
        doctor.edge_url = login->config.edge;
        if (doctor_ca.empty() && login->config.ca) doctor_ca = login->config.ca->string();
      }
      if (doctor.edge_url.empty())
        throw std::runtime_error("no edge: give --edge https://HOST:PORT, or log in with `wtmesh login`");
      if (!doctor_ca.empty()) doctor.ca_file = doctor_ca;
      doctor.transport = agent::parse_edge_transport(doctor_transport).value_or(agent::EdgeTransport::kAuto);
      const auto report = agent::run_doctor(doctor, std::cout);
      return report.ok ? 0 : 1;
    }
  } catch (const std::exception& e) {
    std::cerr << "wtmesh: " << e.what() << std::endl;
    return 1;
  }
  return 0;
}
