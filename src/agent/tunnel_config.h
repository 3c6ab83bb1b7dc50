// What the agent serves: the tunnels of `wtmesh http` / `wtmesh agent --config FILE`, and the YAML
// file format of the latter, validated up front with messages that name the key and line:
//
//   edge: https://127.0.0.1:4433   # or edges in turn: https://a:4433,https://b:4433 (§3.6)
//   ca: state/ca.pem              # optional (system trust otherwise); relative to the file
//   token: eyJ...                 # or token_file: path (re-read at every reconnect), or
//                                 # credential_file: agent.cred (`wtmesh credential`; tokens minted
//                                 # and renewed from it; session_token_ttl: 5m sets their life)
//   domain: localhost             # optional: tunnels are NAME.DOMAIN
//   tunnels:
//     - name: app
//       type: http                # optional; http is the only type in protocol v1
//       local_port: 3000          # or upstream: 127.0.0.1:3000
//       upstream_protocol: h2c    # optional: http1 (default), h2c, or h3 (HTTP/3 over QUIC to UDP
//                                 #   local_port; always TLS: upstream_ca/sni/insecure apply); with
//                                 #   upstream_tls and no protocol, ALPN picks
//       upstream_tls: true        # optional: TLS to the local service (ALPN h2, http/1.1)
//       upstream_ca: certs/ca.pem # optional: trusted beside the system store; relative to the file
//       upstream_sni: app.test    # optional: the name checked and sent as SNI (default localhost)
//       upstream_insecure: true   # optional: no certificate check (self-signed local services)
//       basic_auth: [user:pass]   # optional visitor auth, checked by the edge (docs/protocol.md §3.4):
//       allow_cidr: [10.0.0.0/8]  #   a user:password list (the edge gets salted hashes only), the
//       deny_cidr: [10.9.0.0/16]  #   client ranges allowed (none: any) and denied
//     - name: db
//       type: tcp                 # a TCP tunnel: tcp://EDGE:PORT -> local_port
//       local_port: 5432
//       remote_port: 20042        # optional: this edge port (else one from the edge's range)
//       private: true             # optional: by name only, no public port (not with remote_port)
//       proxy_protocol: true      # optional: a PROXY v2 header toward the local service
//     - name: db                  # the mesh (`wtmesh connect`): a local port whose connections reach
//       type: connect             #   the tcp tunnel (or edge route) NAME through the edge; the token's
//       listen: 127.0.0.1:15432   #   `connect` claim must cover it
//     - name: dns
//       type: udp                 # a UDP tunnel: udp://EDGE:PORT -> local_port (remote_port, private
//       local_port: 5353          #   as for tcp)
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "tunnel/visitor_policy.h"

namespace wtmesh::agent {

inline constexpr size_t kMaxTunnelsPerSession = 64;  // the edge's limit (docs/protocol.md §3)
inline constexpr size_t kMaxConfigFileSize = 1 << 20;

struct TunnelSpec {
  uint32_t id = 0;       // REGISTER id, unique per agent (1, 2, ... in file order)
  std::string name;      // NAME
  std::string hostname;  // NAME.DOMAIN
  std::string type = "http";
  std::string upstream_host = "127.0.0.1";  // an IP literal
  uint16_t upstream_port = 0;
  std::string upstream() const;  // "127.0.0.1:3000" ([v6]:port)

  // How the agent speaks to the local service (`--upstream`, `--upstream-tls`, ...).
  // "" (default): HTTP/1.1 on plain TCP, or over TLS whatever ALPN picks (h2 or http/1.1);
  // "http1": HTTP/1.1 only (ALPN offers only http/1.1); "h2c": HTTP/2 with prior knowledge, no TLS;
  // "h3": HTTP/3 over QUIC to UDP upstream_port (TLS implied, ALPN h3; upstream_tls not needed);
  // public WebTransport sessions are relayed to the service's WebTransport server (docs/protocol.md §7).
  std::string upstream_protocol;
  bool upstream_tls = false;
  std::optional<std::filesystem::path> upstream_ca;  // trusted beside the system store
  std::string upstream_sni;                          // "" = localhost
  bool upstream_insecure = false;                    // no certificate check at all
  // types "tcp", "udp": the public port asked for (0 = any), no public port at all; tcp only: a PROXY
  // v2 header first.
  uint16_t remote_port = 0;
  bool private_only = false;
  bool proxy_protocol = false;
  // type "http": visitor auth the edge enforces (--basic-auth, --allow-cidr, --deny-cidr).
  tunnel::VisitorPolicy visitor;
  // "http://127.0.0.1:3000", "https://...", "h2c://..." for logs; a tcp or udp tunnel's is "127.0.0.1:3000".
  std::string upstream_url() const;
};

// One `wtmesh connect NAME --listen HOST:PORT`: connections accepted there reach NAME (docs/protocol.md
// §4.3). Not registered: the edge is asked per connection.
struct ConnectSpec {
  std::string name;                       // as given; the edge reads NAME alone as NAME.DOMAIN
  std::string listen_host = "127.0.0.1";  // an IP literal
  uint16_t listen_port = 0;               // 0: any free port (tests)
  bool udp = false;                       // a UDP port whose flows reach a udp tunnel (`--udp`)
  std::string listen() const;             // "127.0.0.1:15432"
};

// Checks the upstream_* fields together; false with `error` set to one sentence.
bool check_upstream_options(const TunnelSpec& spec, std::string* error);
// Adds --require-token key files (their public keys) and --challenge; false with `error` for a file
// that is missing or holds no P-256 key, or more than kMaxTokenKeys.
bool add_visitor_tokens(tunnel::VisitorPolicy& policy, const std::vector<std::string>& key_files,
                        bool challenge, std::string* error);
// Adds visitor auth from the command line or YAML: "USER:PASS" credentials, allowed and denied CIDR
// ranges. False with `error` naming the bad value (never the password).
bool add_visitor_auth(tunnel::VisitorPolicy& policy, const std::vector<std::string>& basic,
                      const std::vector<std::string>& allow, const std::vector<std::string>& deny,
                      std::string* error);

struct AgentConfig {
  std::string edge;
  std::string name;         // the user config's (kUser) default tunnel name for `wtmesh http/tcp/udp`
  bool has_domain = false;  // the file sets domain (else the default below)
  std::optional<std::filesystem::path> ca;
  std::string token;                                     // inline, or
  std::optional<std::filesystem::path> token_file;       // read at each connect, or
  std::optional<std::filesystem::path> credential_file;  // a credential (tunnel/credential.h)
  std::chrono::seconds session_token_ttl{300};           // of the tokens minted from it
  std::string domain = "localhost";
  std::vector<TunnelSpec> tunnels;
  std::vector<ConnectSpec> connects;  // entries of type connect
};

// Which file is read: `wtmesh agent --config FILE` (kAgent), or the user's config that `wtmesh login`
// writes (kUser, agent/user_config.h), where the edge, tunnels and the secret may be absent (what
// `wtmesh logout` leaves) and a top-level `name:` sets the default tunnel name.
enum class ConfigKind { kAgent, kUser };

// `text` is the YAML document; relative paths are resolved against `base_dir`. nullopt with
// `error` set to one sentence on the first problem found.
std::optional<AgentConfig> parse_agent_config(std::string_view text, const std::filesystem::path& base_dir,
                                              std::string* error, ConfigKind kind = ConfigKind::kAgent);
std::optional<AgentConfig> load_agent_config(const std::filesystem::path& file, std::string* error,
                                             ConfigKind kind = ConfigKind::kAgent);

// "app" + "localhost" -> a TunnelSpec for app.localhost; nullopt with `error` for a name that does
// not make a valid hostname.
std::optional<TunnelSpec> make_tunnel(std::string_view name, std::string_view domain, std::string* error);
// "127.0.0.1:3000", "[::1]:3000", "localhost:3000" (= 127.0.0.1). The agent relays to local services
// only, so the host must be an IP literal or localhost.
bool parse_upstream(std::string_view text, TunnelSpec& spec, std::string* error);

// The first line of a token file, trimmed; nullopt with `error` when unreadable or empty.
std::optional<std::string> read_token_file(const std::filesystem::path& file, std::string* error);

}  // namespace wtmesh::agent
