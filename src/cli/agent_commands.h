// The agent-side subcommands of the wtmesh binary:
//   wtmesh token --state-dir DIR --name NAME [--ttl 10m] [--domain localhost]
//   wtmesh http LOCALPORT --edge https://HOST:PORT --token TOKEN --name NAME [--ca FILE] [--domain D]
//              (or --token-file FILE, or --credential FILE [--session-token-ttl 5m], the same for all)
//   wtmesh tcp LOCALPORT --edge ... --token ... --name NAME [--remote-port N] [--private] [--proxy-protocol]
//   wtmesh udp LOCALPORT --edge ... --token ... --name NAME [--remote-port N] [--private]
//              [--udp-idle-timeout S] [--udp-max-flows N]
//   wtmesh connect NAME --listen 127.0.0.1:PORT --edge ... --token ... [--ca FILE]
//                  [--udp [--udp-idle-timeout S] [--udp-max-flows N]]
//   wtmesh agent --config FILE [--max-udp-payload N] [--udp-idle-timeout S] [--udp-max-flows N]
// --edge, the secret, --ca, --name and --domain default to `wtmesh login`'s (cli/login_commands.h);
// WTMESH_TOKEN / WTMESH_CREDENTIAL come between the command line and the login.
// main.cc registers them with add_agent_commands() and runs the chosen one with
// run_agent_command(). Errors are sentences on stderr; exit status 1.
#pragma once

#include <CLI/CLI.hpp>
#include <optional>
#include <string>
#include <vector>

namespace wtmesh::cli {

// What `http`, `tcp` and `udp` share: the local port, the edge, the token and the name.
struct TunnelArgs {
  int local_port = 0;
  std::string edge, token, token_file, name, ca, domain;  // "": from the login (agent/user_config.h)
  std::string credential, session_token_ttl = "5m";  // --credential FILE (tunnel/credential.h)
  size_t max_udp_payload = 1452;
  std::string transport = "auto";  // --transport quic|h2|auto
};

// What `tcp` and `udp` add: an edge port of their own.
struct PortTunnelArgs : TunnelArgs {
  int remote_port = 0;
  bool private_only = false;
};

struct AgentCommands {
  CLI::App* token_cmd = nullptr;
  CLI::App* http_cmd = nullptr;
  CLI::App* tcp_cmd = nullptr;
  CLI::App* udp_cmd = nullptr;
  CLI::App* agent_cmd = nullptr;
  CLI::App* connect_cmd = nullptr;

  struct {
    std::string state_dir, name, ttl = "10m", domain = "localhost", subject;
    std::string visitor_key;           // --visitor-key FILE: a visitor token signed with the owner's key
    std::vector<std::string> connect;  // --connect NAME: names the token may reach
  } token;
  struct : TunnelArgs {
    std::string upstream, upstream_ca, upstream_sni;  // --upstream http1|h2c, TLS options
    bool upstream_tls = false, upstream_insecure = false;
    std::vector<std::string> basic_auth, allow_cidr, deny_cidr;  // visitor auth at the edge
    std::vector<std::string> require_token;                      // key files (--require-token)
    bool challenge = false;                                      // --challenge
  } http;
  struct : PortTunnelArgs {
    bool proxy_protocol = false;
  } tcp;
  // The agent's side of udp tunnels' flows (`udp` and `agent`).
  struct UdpFlowArgs {
    int idle_timeout_s = 60;
    size_t max_flows = 1024;
  };
  struct : PortTunnelArgs {
    UdpFlowArgs flows;
  } udp;
  struct {
    std::string config;
    size_t max_udp_payload = 1452;
    std::string transport = "auto";
    UdpFlowArgs flows;
  } agent;
  struct {
    std::string name, listen, edge, token, token_file, ca;
    std::string credential, session_token_ttl = "5m";
    size_t max_udp_payload = 1452;
    std::string transport = "auto";
    bool udp = false;   // --udp: a UDP port, one flow per client address
    UdpFlowArgs flows;  // its flows' cap and idle expiry
  } connect;
};

void add_agent_commands(CLI::App& app, AgentCommands& commands);
// The exit status when one of these subcommands was chosen, nullopt otherwise.
std::optional<int> run_agent_command(const AgentCommands& commands);

}  // namespace wtmesh::cli
