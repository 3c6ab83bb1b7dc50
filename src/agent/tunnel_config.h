// What the agent serves: the tunnels of `wtmesh http` / `wtmesh agent --config FILE`, and the YAML
// file format of the latter, validated up front with messages that name the key and line:
//
//   edge: https://127.0.0.1:4433
//   ca: state/ca.pem              # optional (system trust otherwise); relative to the file
//   token: eyJ...                 # or token_file: path (re-read at every reconnect)
//   domain: localhost             # optional: tunnels are NAME.DOMAIN
//   tunnels:
//     - name: app
//       type: http                # optional; http is the only type in protocol v1
//       local_port: 3000          # or upstream: 127.0.0.1:3000
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

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
};

struct AgentConfig {
  std::string edge;
  std::optional<std::filesystem::path> ca;
  std::string token;                                // inline, or
  std::optional<std::filesystem::path> token_file;  // read at each connect
  std::string domain = "localhost";
  std::vector<TunnelSpec> tunnels;
};

// `text` is the YAML document; relative paths are resolved against `base_dir`. nullopt with
// `error` set to one sentence on the first problem found.
std::optional<AgentConfig> parse_agent_config(std::string_view text, const std::filesystem::path& base_dir,
                                              std::string* error);
std::optional<AgentConfig> load_agent_config(const std::filesystem::path& file, std::string* error);

// "app" + "localhost" -> a TunnelSpec for app.localhost; nullopt with `error` for a name that does
// not make a valid hostname.
std::optional<TunnelSpec> make_tunnel(std::string_view name, std::string_view domain, std::string* error);
// "127.0.0.1:3000", "[::1]:3000", "localhost:3000" (= 127.0.0.1). The agent relays to local services
// only, so the host must be an IP literal or localhost.
bool parse_upstream(std::string_view text, TunnelSpec& spec, std::string* error);

// The first line of a token file, trimmed; nullopt with `error` when unreadable or empty.
std::optional<std::string> read_token_file(const std::filesystem::path& file, std::string* error);

}  // namespace wtmesh::agent
