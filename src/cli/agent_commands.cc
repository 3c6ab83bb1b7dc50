#include "cli/agent_commands.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <cstdlib>
#include <ctime>
#include <functional>
#include <iostream>
#include <set>

#include "agent/edge_url.h"
#include "agent/tunnel_agent.h"
#include "agent/tunnel_config.h"
#include "agent/user_config.h"
#include "cli/credential_commands.h"
#include "cli/login_commands.h"
#include "common/log_text.h"
#include "tunnel/keystore.h"
#include "tunnel/token.h"

namespace wtmesh::cli {

namespace asio = boost::asio;
using namespace wtmesh::agent;

namespace {

std::string clock_now() {
  const std::time_t t = std::time(nullptr);
  std::tm tm{};
  localtime_r(&t, &tm);
  char buf[16];
  std::strftime(buf, sizeof(buf), "%H:%M:%S", &tm);
  return buf;
}

// One line per request: time method path status bytes duration.
std::string request_line(const std::string& prefix, const ExchangeResult& r) {
  const double ms = std::chrono::duration<double, std::milli>(r.duration).count();
  std::string line = fmt::format(
      "{} {}{} {} {} {} {:.1f} ms", clock_now(), prefix, log_text(r.method, 32), log_target(r.target),
      r.status == 0 ? std::string("-") : std::to_string(r.status), r.response_bytes, ms);
  if (r.failed && !r.error.empty()) line += "  (" + r.error + ")";
  return line;
}

int run_token(const AgentCommands& c) {
  const auto& a = c.token;
  if (a.visitor_key.empty() && a.state_dir.empty())
    throw std::runtime_error("give --state-dir (an agent's token) or --visitor-key (a visitor token)");
  const auto ttl = tunnel::parse_duration(a.ttl);
  if (!ttl) {
    throw std::runtime_error("--ttl \"" + a.ttl +
                             "\" is not a duration such as 90s, 10m, 2h or 1d (at least 10s, at most 30d)");
  }
  std::string host;
  if (a.name == "*") {
    host = "*." + a.domain;  // every tunnel name under the domain
  } else {
    std::string error;
    auto t = make_tunnel(a.name, a.domain, &error);
    if (!t) throw std::runtime_error("--name: " + error);
    host = t->hostname;
  }
  if (!tunnel::is_valid_host_pattern(host))
    throw std::runtime_error("--domain \"" + a.domain + "\" is not a DNS name");
  if (!a.visitor_key.empty()) {
    // A visitor token (docs/protocol.md §3.4): signed by the tunnel owner's key, which is made on
    // first use; the tunnel names it with --require-token.
    if (!a.connect.empty()) throw std::runtime_error("--connect is for agents' tokens, not visitor tokens");
    if (!std::filesystem::exists(a.visitor_key)) {
      tunnel::SigningKey::generate().save(a.visitor_key);
      std::cerr << "wtmesh: made the visitor key " << a.visitor_key << " (mode 0600); start the tunnel with "
                << "--require-token " << a.visitor_key << std::endl;
    }
    const tunnel::SigningKey key = tunnel::SigningKey::load(a.visitor_key);
    auto claims = tunnel::make_claims(a.subject.empty() ? "visitor" : a.subject, {host}, *ttl);
    claims.audience = std::string(tunnel::kVisitorAudience);
    std::cout << key.sign(claims) << std::endl;
    return 0;
  }
  tunnel::KeyStore store(a.state_dir);
  const tunnel::SigningKey key = store.signing_key();
  auto claims = tunnel::make_claims(a.subject.empty() ? a.name : a.subject, {host}, *ttl);
  for (const auto& c : a.connect) {
    // As the edge reads a connect's name: NAME alone is NAME.DOMAIN, "*" every NAME.DOMAIN.
    const std::string pattern = c == "*"                           ? "*." + a.domain
                                : c.find('.') == std::string::npos ? c + "." + a.domain
                                                                   : c;
    if (!tunnel::is_valid_host_pattern(pattern))
      throw std::runtime_error("--connect \"" + c + "\" is not a name, NAME.DOMAIN or *.DOMAIN");
    claims.connect.push_back(pattern);
  }
  std::cout << key.sign(claims) << std::endl;
  return 0;
}

// Runs `options` until it stops; prints as it goes. `prefix_names`: several tunnels share the log.
int run_tunnels(AgentOptions options, bool prefix_names) {
  asio::io_context io;
  int status = 0;
  AgentEvents ev;
  std::set<std::string> announced;
  ev.on_registered = [&announced](const TunnelSpec& t, const std::string& url) {
    // The public URL once; after a reconnect only a note that the name is served again.
    if (announced.insert(t.type + " " + t.hostname).second) {  // a name may be a tcp and a udp tunnel
      std::cout << url << "  ->  " << t.upstream_url() << (t.type == "http" ? "/" : "") << std::endl;
    } else {
      std::cerr << "wtmesh: " << t.hostname << " registered again" << std::endl;
    }
  };
  // `wtmesh http` ends on a refusal and says why once, through on_fatal.
  ev.on_refused = [quiet = options.exit_on_refusal](const TunnelSpec& t, const std::string& code,
                                                    const std::string& message) {
    if (quiet && code != "taken") return;
    // The edge's message is a clause without a full stop ("NAME is served by another agent").
    std::string why = message.empty() ? "no reason given" : message;
    if (code == "taken" && !why.ends_with('.')) why += '.';
    std::cerr << "wtmesh: the edge refused " << t.hostname << (code.empty() ? "" : " (" + code + ")") << ": "
              << why << (code == "taken" ? " Trying again shortly." : "") << std::endl;
  };
  // The request log is flushed twice a second rather than per line: under load a write per request
  // would cost more than the request.
  bool log_dirty = false;
  ev.on_request = [prefix_names, &log_dirty](const TunnelSpec& t, const ExchangeResult& r) {
    std::cout << request_line(prefix_names ? t.hostname + " " : "", r) << '\n';
    log_dirty = true;
  };
  asio::steady_timer flush_timer(io);
  std::function<void()> arm_flush = [&] {
    flush_timer.expires_after(std::chrono::milliseconds(500));
    flush_timer.async_wait([&](const boost::system::error_code& ec) {
      if (ec) return;
      if (log_dirty) std::cout.flush();
      log_dirty = false;
      arm_flush();
    });
  };
  arm_flush();
  ev.on_connect_ready = [](const ConnectSpec& c, const std::string& listen) {
    std::cout << "connect " << c.name << "  ->  " << (c.udp ? "udp://" : "") << listen << std::endl;
  };
  ev.on_connect_refused = [](const ConnectSpec& c, const std::string& code, const std::string& message) {
    std::cerr << "wtmesh: connect " << c.name << (c.udp ? " --udp" : "")
              << " refused: " << (message.empty() ? code : message) << " (" << code << ")" << std::endl;
  };
  ev.on_notice = [](const std::string& s) { std::cerr << "wtmesh: " << s << std::endl; };
  ev.on_fatal = [&](const std::string& s) {
    std::cerr << "wtmesh: " << s << std::endl;
    status = 1;
    // Let the close go out, then end.
    auto t = std::make_shared<asio::steady_timer>(io, std::chrono::milliseconds(200));
    t->async_wait([&io, t](const boost::system::error_code&) { io.stop(); });
  };
  TunnelAgent agent(io, std::move(options), std::move(ev));
  asio::signal_set signals(io, SIGINT, SIGTERM);
  signals.async_wait([&](const boost::system::error_code& ec, int) {
    if (ec) return;
    agent.stop();
    auto t = std::make_shared<asio::steady_timer>(io, std::chrono::milliseconds(300));
    t->async_wait([&io, t](const boost::system::error_code&) { io.stop(); });
  });
  agent.start();
  io.run();
  std::cout.flush();
  return status;
}

void warn_insecure(const TunnelSpec& t) {
  if (t.upstream_insecure) {
    std::cerr << "wtmesh: warning: " << t.hostname << ": the certificate of " << t.upstream_url()
              << " is not checked (--upstream-insecure)" << std::endl;
  }
}

EdgeTransport transport_option(const std::string& text) {
  auto t = parse_edge_transport(text);
  if (!t) throw std::runtime_error("--transport: \"" + text + "\" is not quic, h2 or auto");
  return *t;
}

std::chrono::seconds session_token_ttl(const std::string& text) {
  const auto ttl = tunnel::parse_duration(text);
  if (!ttl) {
    throw std::runtime_error("--session-token-ttl \"" + text +
                             "\" is not a duration such as 30s or 5m (at least 10s, at most 30d)");
  }
  return *ttl;
}

// WTMESH_QUIC_PROBE_INTERVAL_MS (1000..86400000): how often an agent on h2 tries QUIC again (tests,
// tuning); unset or malformed: the default.
void apply_probe_interval(AgentOptions& o) {
  // WTMESH_0RTT=0: every reconnect makes a full handshake (docs/protocol.md §1.2).
  if (const char* z = std::getenv("WTMESH_0RTT"); z != nullptr && std::string_view(z) == "0")
    o.zero_rtt = false;
  const char* env = std::getenv("WTMESH_QUIC_PROBE_INTERVAL_MS");
  if (env == nullptr) return;
  char* end = nullptr;
  const long long ms = std::strtoll(env, &end, 10);
  if (end == env || *end != '\0' || ms < 1000 || ms > 86'400'000) {
    spdlog::warn("WTMESH_QUIC_PROBE_INTERVAL_MS=\"{}\" is not 1000..86400000: using {} ms", env,
                 o.quic_probe_every.count());
    return;
  }
  o.quic_probe_every = std::chrono::milliseconds(ms);
}

// The edge and the secret of `http`, `tcp`, `udp` and `connect`: the command line, then WTMESH_TOKEN /
// WTMESH_CREDENTIAL, then the stored login (agent/user_config.h).
struct EdgeChoice {
  AgentOptions options;
  ResolvedAgent resolved;
};

EdgeChoice edge_options(const AgentFlags& flags, const std::string& ttl, size_t max_udp_payload,
                        const std::string& transport) {
  if (!flags.token.empty()) {
    std::cerr << "wtmesh: warning: --token on the command line is visible to other local users (ps, "
                 "/proc); use --token-file FILE, the WTMESH_TOKEN variable, or `wtmesh login` with a "
                 "credential"
              << std::endl;
  }
  const auto login = stored_login();
  std::string error;
  auto r = resolve_agent(flags, AgentEnvironment::from_process(),
                         login ? std::optional<AgentConfig>(login->config) : std::nullopt,
                         login ? login->file : std::filesystem::path(), &error);
  if (!r) throw std::runtime_error(error);
  auto edges = parse_edge_urls(r->edge, &error);
  if (!edges) throw std::runtime_error("--edge: " + error);
  AgentOptions o;
  o.edge = edges->front();
  o.edge_alternates.assign(edges->begin() + 1, edges->end());
  if (r->ca) {
    if (!std::filesystem::exists(*r->ca))
      throw std::runtime_error("--ca " + r->ca->string() + " does not exist");
    o.ca_file = r->ca;
  }
  o.token = r->token;
  o.token_file = r->token_file;
  if (r->credential_file) {
    o.credential = load_credential(*r->credential_file);
  } else if (!r->credential_json.empty()) {
    std::string why;
    auto cred = tunnel::Credential::parse(r->credential_json, &why);
    if (!cred) throw std::runtime_error("WTMESH_CREDENTIAL is not a credential: " + why);
    o.credential = std::make_shared<const tunnel::Credential>(std::move(*cred));
  }
  if (o.credential) o.session_token_ttl = session_token_ttl(ttl);
  o.exit_on_first_auth_failure = true;
  o.transport.max_udp_payload = max_udp_payload;
  o.edge_transport = transport_option(transport);
  apply_probe_interval(o);
  return {std::move(o), std::move(*r)};
}

struct SingleTunnel {
  TunnelSpec spec;
  AgentOptions options;
  std::string edge;  // the URL, for the banner
  bool random_name = false;
};

// The one tunnel of `wtmesh http` / `wtmesh tcp` / `wtmesh udp` (id 1); the agent ends when the first
// attempt is refused a session.
SingleTunnel single_tunnel(const TunnelArgs& a) {
  auto [o, r] = edge_options({a.edge, a.token, a.token_file, a.credential, a.ca, a.name, a.domain},
                             a.session_token_ttl, a.max_udp_payload, a.transport);
  const TunnelName name = default_tunnel_name(r.name, r.domain, o.credential.get());
  std::string error;
  auto t = make_tunnel(name.name, name.domain, &error);
  if (!t) throw std::runtime_error("--name: " + error);
  t->id = 1;
  t->upstream_port = static_cast<uint16_t>(a.local_port);
  o.exit_on_refusal = true;
  return {std::move(*t), std::move(o), r.edge, name.random};
}

// The one tunnel of `wtmesh tcp` / `wtmesh udp`: single_tunnel() with its type and edge port.
SingleTunnel single_port_tunnel(const PortTunnelArgs& a, const std::string& type) {
  auto r = single_tunnel(a);
  r.spec.type = type;
  if (a.private_only && a.remote_port != 0) throw std::runtime_error("--private has no --remote-port");
  r.spec.remote_port = static_cast<uint16_t>(a.remote_port);
  r.spec.private_only = a.private_only;
  return r;
}

// The banner's note that the tunnel's name was picked at random, or "".
std::string random_note(const SingleTunnel& t) {
  return t.random_name ? " (a random name: choose one with --name, or `wtmesh login --name`)" : "";
}

int run_tcp(const AgentCommands& c) {
  const auto& a = c.tcp;
  auto t = single_port_tunnel(a, "tcp");
  t.spec.proxy_protocol = a.proxy_protocol;
  t.options.tunnels = {t.spec};
  std::cerr << "wtmesh: exposing tcp " << t.spec.upstream_url() << " as " << t.spec.hostname << " via "
            << t.edge << (a.proxy_protocol ? " (PROXY v2 header toward it)" : "") << random_note(t)
            << std::endl;
  return run_tunnels(std::move(t.options), false);
}

tunnel::UdpFlowOptions udp_flow_options(const AgentCommands::UdpFlowArgs& a) {
  tunnel::UdpFlowOptions o;
  o.idle_timeout = std::chrono::seconds(a.idle_timeout_s);
  o.max_flows = a.max_flows;
  return o;
}

int run_udp(const AgentCommands& c) {
  const auto& a = c.udp;
  auto t = single_port_tunnel(a, "udp");
  t.options.tunnels = {t.spec};
  t.options.udp = udp_flow_options(a.flows);
  std::cerr << "wtmesh: exposing udp " << t.spec.upstream_url() << " as " << t.spec.hostname << " via "
            << t.edge << random_note(t) << std::endl;
  return run_tunnels(std::move(t.options), false);
}

int run_http(const AgentCommands& c) {
  const auto& a = c.http;
  std::string error;
  auto single = single_tunnel(a);
  auto* t = &single.spec;
  t->upstream_protocol = a.upstream;
  t->upstream_tls = a.upstream_tls;
  if (!a.upstream_ca.empty()) {
    if (!std::filesystem::exists(a.upstream_ca))
      throw std::runtime_error("--upstream-ca " + a.upstream_ca + " does not exist");
    t->upstream_ca = a.upstream_ca;
  }
  t->upstream_sni = a.upstream_sni;
  t->upstream_insecure = a.upstream_insecure;
  if (!check_upstream_options(*t, &error)) throw std::runtime_error(error);
  if (!add_visitor_auth(t->visitor, a.basic_auth, a.allow_cidr, a.deny_cidr, &error) ||
      !add_visitor_tokens(t->visitor, a.require_token, a.challenge, &error))
    throw std::runtime_error(error);
  if (!a.basic_auth.empty()) {
    std::cerr << "wtmesh: warning: --basic-auth passwords on the command line are visible to other local "
                 "users (ps); a YAML config file (basic_auth:) keeps them out of sight"
              << std::endl;
  }
  auto o = std::move(single.options);
  o.tunnels = {*t};
  std::cerr << "wtmesh: exposing " << t->upstream_url() << " as " << t->hostname << " via " << single.edge
            << random_note(single) << std::endl;
  warn_insecure(*t);
  return run_tunnels(std::move(o), false);
}

int run_connect(const AgentCommands& c) {
  const auto& a = c.connect;
  auto [o, r] = edge_options({a.edge, a.token, a.token_file, a.credential, a.ca, "", ""}, a.session_token_ttl,
                             a.max_udp_payload, a.transport);
  std::string error;
  if (a.name.empty() || a.name.size() > 253 || !tunnel::is_valid_host_pattern(a.name, false))
    throw std::runtime_error("NAME \"" + a.name + "\" is not a name");
  TunnelSpec addr;
  if (!parse_upstream(a.listen, addr, &error)) throw std::runtime_error("--listen: " + error);
  o.connects = {ConnectSpec{a.name, addr.upstream_host, addr.upstream_port, a.udp}};
  o.udp = udp_flow_options(a.flows);
  std::cerr << "wtmesh: connecting " << (a.udp ? "udp " : "") << a.listen << " to " << a.name << " via "
            << r.edge << std::endl;
  return run_tunnels(std::move(o), false);
}

int run_agent(const AgentCommands& c) {
  std::string error;
  std::optional<AgentConfig> cfg;
  std::string file = c.agent.config;
  if (file.empty()) {
    // Without --config: the tunnels of the user's config, next to the login.
    auto login = stored_login();
    if (login) file = login->file.string();
    if (!login || login->config.tunnels.empty()) {
      throw std::runtime_error("no --config, and " +
                               (login
                                    ? file + " lists no tunnels (add tunnels: as in `wtmesh agent --config`)"
                                    : std::string("no login (`wtmesh login --edge URL --credential FILE`)")) +
                               "; for one tunnel, `wtmesh http PORT` is enough");
    }
    if (login->config.edge.empty() ||
        (login->config.token.empty() && !login->config.token_file && !login->config.credential_file))
      throw std::runtime_error(file + " has no edge or no credential (run `wtmesh login`)");
    cfg = std::move(login->config);
  } else {
    cfg = load_agent_config(file, &error);
  }
  if (!cfg) throw std::runtime_error(error);
  // `edge: https://a:4433,https://b:4433`: the agent moves to the next when its edge drains (§3.6).
  auto edges = parse_edge_urls(cfg->edge, &error);
  if (!edges) throw std::runtime_error(file + ": edge: " + error);
  if (cfg->ca && !std::filesystem::exists(*cfg->ca)) {
    throw std::runtime_error(file + ": ca " + cfg->ca->string() + " does not exist");
  }
  AgentOptions o;
  o.edge = edges->front();
  o.edge_alternates.assign(edges->begin() + 1, edges->end());
  o.ca_file = cfg->ca;
  o.token = cfg->token;
  o.token_file = cfg->token_file;
  if (cfg->credential_file) o.credential = load_credential(*cfg->credential_file);
  o.session_token_ttl = cfg->session_token_ttl;
  o.tunnels = cfg->tunnels;
  o.transport.max_udp_payload = c.agent.max_udp_payload;
  o.edge_transport = transport_option(c.agent.transport);
  apply_probe_interval(o);
  o.connects = cfg->connects;
  o.udp = udp_flow_options(c.agent.flows);
  for (const auto& t : o.tunnels) {
    std::cerr << "wtmesh: tunnel " << t.hostname << " -> " << t.upstream_url() << std::endl;
    warn_insecure(t);
  }
  return run_tunnels(std::move(o), true);
}

void add_transport_option(CLI::App* cmd, std::string& value) {
  cmd->add_option(
         "--transport", value,
         "how to reach the edge: quic (HTTP/3), h2 (WebTransport over HTTP/2 on TCP + TLS, where UDP is "
         "blocked), or auto: races them (QUIC first, h2 300 ms later or when QUIC fails; the first "
         "handshake wins) and, on h2, tries QUIC again every 60 s (WTMESH_QUIC_PROBE_INTERVAL_MS) and moves "
         "to it without dropping a request")
      ->capture_default_str()
      ->check(CLI::IsMember({"quic", "h2", "auto"}));
}

void add_max_udp_payload_option(CLI::App* cmd, size_t& value) {
  cmd->add_option("--max-udp-payload", value,
                  "largest QUIC packet to send; PMTU discovery probes up to it (larger cuts CPU on loopback)")
      ->capture_default_str()
      ->check(CLI::Range(1200, 65507));
}

void add_credential_options(CLI::App* cmd, std::string& credential, std::string& ttl) {
  cmd->add_option("--credential", credential,
                  "credential file from `wtmesh credential`: session tokens are minted from it and renewed "
                  "inside the live session");
  cmd->add_option("--session-token-ttl", ttl,
                  "lifetime of the session tokens minted from --credential (at most the edge's "
                  "--session-token-ttl)")
      ->capture_default_str();
}

void add_tunnel_options(CLI::App* cmd, TunnelArgs& a, const std::string& name_help) {
  cmd->add_option("LOCALPORT", a.local_port, "port of the local service on 127.0.0.1")
      ->required()
      ->check(CLI::Range(1, 65535));
  cmd->add_option("--edge", a.edge,
                  "the edge, https://HOST:PORT (default: the one `wtmesh login` stored); a pair of edges "
                  "separated by a comma: a draining edge's agents move to the next one");
  add_transport_option(cmd, a.transport);
  cmd->add_option("--token", a.token,
                  "token from `wtmesh token` (visible to other local users in ps: prefer --token-file, "
                  "WTMESH_TOKEN or `wtmesh login`)");
  cmd->add_option("--token-file", a.token_file, "file holding the token (re-read at each reconnect)");
  add_credential_options(cmd, a.credential, a.session_token_ttl);
  cmd->add_option("--name", a.name,
                  name_help + " (default: the login's name, the credential's, or a random one)");
  cmd->add_option("--ca", a.ca,
                  "CA certificate to trust (e.g. STATE_DIR/ca.pem); default: the login's, else the system's");
  cmd->add_option("--domain", a.domain,
                  "the edge's tunnel domain (default: the login's, the credential's, or localhost)");
  add_max_udp_payload_option(cmd, a.max_udp_payload);
}

void add_port_options(CLI::App* cmd, PortTunnelArgs& a) {
  cmd->add_option("--remote-port", a.remote_port, "the edge port to ask for (default: any of its range)")
      ->check(CLI::Range(1, 65535));
  cmd->add_flag("--private", a.private_only, "no public port: reachable by name only");
}

void add_udp_flow_options(CLI::App* cmd, AgentCommands::UdpFlowArgs& a) {
  cmd->add_option("--udp-idle-timeout", a.idle_timeout_s,
                  "seconds without a packet after which a udp tunnel's flow (its local socket) is closed")
      ->capture_default_str()
      ->check(CLI::Range(1, 86400));
  cmd->add_option("--udp-max-flows", a.max_flows,
                  "flows one udp tunnel may have open at once (more are dropped)")
      ->capture_default_str()
      ->check(CLI::Range(1, 1000000));
}

}  // namespace

void add_agent_commands(CLI::App& app, AgentCommands& c) {
  c.token_cmd = app.add_subcommand("token", "print a short-lived token for a tunnel hostname (NAME.DOMAIN)");
  c.token_cmd->add_option("--state-dir", c.token.state_dir,
                          "the edge's state directory (its keys/ signs the token)");
  c.token_cmd->add_option("--visitor-key", c.token.visitor_key,
                          "print a visitor token instead, signed with this key file of the tunnel's owner "
                          "(made, mode 0600, if missing); the tunnel takes it with --require-token FILE");
  c.token_cmd
      ->add_option("--name", c.token.name, "tunnel name; the token covers NAME.DOMAIN (\"*\": every name)")
      ->required();
  c.token_cmd->add_option("--ttl", c.token.ttl, "lifetime: 90s, 10m, 2h, 1d")->capture_default_str();
  c.token_cmd->add_option("--domain", c.token.domain, "the edge's tunnel domain")->capture_default_str();
  c.token_cmd->add_option("--subject", c.token.subject, "who the token is for (default: the name)");
  c.token_cmd->add_option("--connect", c.token.connect,
                          "a name the bearer may reach with `wtmesh connect` (NAME.DOMAIN, \"*\": every "
                          "name; repeatable); without it the token reaches nothing");

  c.http_cmd = app.add_subcommand("http", "expose a local HTTP service through an edge");
  add_tunnel_options(c.http_cmd, c.http, "tunnel name: the public URL is https://NAME.DOMAIN:PORT/");

  c.http_cmd->add_option(
      "--upstream", c.http.upstream,
      "protocol to the local service: http1 (default), h2c (HTTP/2, prior knowledge) or h3 "
      "(HTTP/3 over QUIC to UDP LOCALPORT; always TLS, --upstream-ca/-sni/-insecure apply; WebTransport "
      "sessions are relayed to it)");
  c.http_cmd->add_flag("--upstream-tls", c.http.upstream_tls,
                       "TLS to the local service; ALPN picks h2 or http/1.1");
  c.http_cmd->add_option(
      "--upstream-ca", c.http.upstream_ca,
      "CA certificate the local service's certificate may chain to (besides the system store)");
  c.http_cmd->add_option(
      "--upstream-sni", c.http.upstream_sni,
      "name sent as SNI and checked in the local service's certificate (default: localhost)");
  c.http_cmd->add_flag("--upstream-insecure", c.http.upstream_insecure,
                       "do not check the local service's certificate (self-signed services)");
  c.http_cmd->add_option(
      "--basic-auth", c.http.basic_auth,
      "USER:PASSWORD visitors must give (HTTP Basic, checked by the edge, which gets only a salted "
      "hash; repeatable)");
  c.http_cmd->add_option(
      "--allow-cidr", c.http.allow_cidr,
      "client address range allowed to reach the tunnel, e.g. 203.0.113.0/24 (repeatable; others "
      "get 403)");
  c.http_cmd->add_option("--deny-cidr", c.http.deny_cidr,
                         "client address range refused with 403 (repeatable; wins over --allow-cidr)");
  c.http_cmd->add_option(
      "--require-token", c.http.require_token,
      "key file (from `wtmesh token --visitor-key FILE`, or its public key): visitors need a token it "
      "signed, as Authorization: Bearer or ?wtmesh_token= (repeatable; the edge gets the public key only)");
  c.http_cmd->add_flag("--challenge", c.http.challenge,
                       "browsers pass a short check page that sets a signed cookie; other clients need it, "
                       "or a visitor token or password if those are set");

  c.tcp_cmd = app.add_subcommand("tcp", "expose a local TCP service on a port of an edge");
  add_tunnel_options(c.tcp_cmd, c.tcp, "tunnel name NAME.DOMAIN (the token must cover it)");
  add_port_options(c.tcp_cmd, c.tcp);
  c.tcp_cmd->add_flag("--proxy-protocol", c.tcp.proxy_protocol,
                      "send a PROXY protocol v2 header with the client's address to the local service");

  c.connect_cmd = app.add_subcommand(
      "connect",
      "open a local port whose connections reach a private tcp tunnel (or edge route) by name; with --udp a "
      "UDP port whose packets reach a udp tunnel");
  c.connect_cmd->add_option("NAME", c.connect.name, "the name to reach (NAME means NAME.DOMAIN at the edge)")
      ->required();
  c.connect_cmd->add_option("--listen", c.connect.listen, "local address to listen on, 127.0.0.1:PORT")
      ->required();
  c.connect_cmd->add_option("--edge", c.connect.edge,
                            "the edge, https://HOST:PORT (default: the one `wtmesh login` stored)");
  add_transport_option(c.connect_cmd, c.connect.transport);
  c.connect_cmd->add_option("--token", c.connect.token,
                            "token from `wtmesh token --connect NAME` (visible in ps: prefer --token-file)");
  c.connect_cmd->add_option("--token-file", c.connect.token_file, "file holding the token");
  add_credential_options(c.connect_cmd, c.connect.credential, c.connect.session_token_ttl);
  c.connect_cmd->add_option("--ca", c.connect.ca,
                            "CA certificate to trust (e.g. STATE_DIR/ca.pem; default: the login's)");
  c.connect_cmd->add_option("--max-udp-payload", c.connect.max_udp_payload, "largest QUIC packet to send")
      ->capture_default_str()
      ->check(CLI::Range(1200, 65507));
  c.connect_cmd->add_flag("--udp", c.connect.udp,
                          "a UDP port: each client address is one flow to the udp tunnel NAME");
  add_udp_flow_options(c.connect_cmd, c.connect.flows);
  c.udp_cmd = app.add_subcommand("udp", "expose a local UDP service on a port of an edge");
  add_tunnel_options(c.udp_cmd, c.udp, "tunnel name NAME.DOMAIN (the token must cover it)");
  add_port_options(c.udp_cmd, c.udp);
  add_udp_flow_options(c.udp_cmd, c.udp.flows);

  c.agent_cmd = app.add_subcommand("agent", "run the tunnels of a YAML file on one session");
  c.agent_cmd->add_option(
      "--config", c.agent.config,
      "YAML file: edge, ca, token or token_file or credential_file, tunnels (default: the "
      "user's config that `wtmesh login` wrote, with tunnels: added)");
  add_max_udp_payload_option(c.agent_cmd, c.agent.max_udp_payload);
  add_transport_option(c.agent_cmd, c.agent.transport);
  add_udp_flow_options(c.agent_cmd, c.agent.flows);
}

std::optional<int> run_agent_command(const AgentCommands& c) {
  if (c.token_cmd && *c.token_cmd) return run_token(c);
  if (c.http_cmd && *c.http_cmd) return run_http(c);
  if (c.tcp_cmd && *c.tcp_cmd) return run_tcp(c);
  if (c.udp_cmd && *c.udp_cmd) return run_udp(c);
  if (c.agent_cmd && *c.agent_cmd) return run_agent(c);
  if (c.connect_cmd && *c.connect_cmd) return run_connect(c);
  return std::nullopt;
}

}  // namespace wtmesh::cli
