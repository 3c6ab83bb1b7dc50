// The user's login (`wtmesh login`): the edge, the credential and the CA kept in
// $XDG_CONFIG_HOME/wtmesh/agent.yml (default ~/.config/wtmesh/agent.yml), so that `wtmesh http 3000`
// needs no other flag. The file is the `wtmesh agent --config` format read as ConfigKind::kUser
// (agent/tunnel_config.h): tunnels and the secret optional, plus `name:` (the default tunnel name).
//
//   edge: https://edge.example.com:4433
//   credential_file: agent.cred     # a copy, in the same 0700 directory, mode 0600
//   ca: /srv/wtmesh/edge/ca.pem     # referred to by absolute path (public; follows a reissued CA)
//   name: app                       # optional (login --name); domain: optional (login --domain)
//
// The credential is copied rather than referred to: it holds a private key, so the copy is made 0600
// in a 0700 directory whatever the original's mode and place (a download folder, /tmp), and the login
// outlives the original. The CA is public and referred to, so a CA the edge reissues in its state
// directory (quic/certs.h) is picked up without a new login.
//
// Precedence, for each of edge, secret, CA, name, domain: the command line, then the environment
// (WTMESH_TOKEN: a token; WTMESH_CREDENTIAL: a credential file's path, or its JSON contents when the
// value starts with "{"), then the login. The login's secret, CA, name and domain apply only when the
// edge is the login's (no --edge, or the same URL): they belong to that edge.
#pragma once

#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "agent/tunnel_config.h"
#include "tunnel/credential.h"

namespace wtmesh::agent {

inline constexpr const char* kUserConfigFile = "agent.yml";
inline constexpr const char* kUserCredentialFile = "agent.cred";

// $XDG_CONFIG_HOME/wtmesh when that is an absolute path (the XDG spec ignores relative ones), else
// $HOME/.config/wtmesh. nullopt with `error` when neither gives an absolute path. The arguments are
// the variables' values (nullptr: unset).
std::optional<std::filesystem::path> user_config_dir(const char* xdg_config_home, const char* home,
                                                     std::string* error);
// user_config_dir() of this process' environment; throws std::runtime_error.
std::filesystem::path user_config_dir_from_env();

struct LoginOptions {
  std::string edge;                         // https://HOST:PORT
  std::filesystem::path credential;         // a file from `wtmesh credential`
  std::optional<std::filesystem::path> ca;  // CA certificate to trust for the edge
  std::string name, domain;                 // optional defaults for the tunnel name and domain
};

// Checks the options (the edge URL, a credential that parses and has not expired, the CA exists), makes
// `dir` (0700), copies the credential to dir/agent.cred (0600) and writes dir/agent.yml (0600), keeping
// whatever else the file held (tunnels, session_token_ttl) and dropping another secret (token,
// token_file). Returns the credential read. Throws std::runtime_error with one sentence.
tunnel::Credential save_login(const std::filesystem::path& dir, const LoginOptions& options);

// Removes the login: dir/agent.cred and the login's keys of dir/agent.yml (edge, ca, the secret, name,
// domain), the file itself when nothing else is left. False when there was no login.
bool clear_login(const std::filesystem::path& dir);

// dir/agent.yml read as ConfigKind::kUser; nullopt when the file does not exist. Throws
// std::runtime_error naming the file for one that does not parse.
std::optional<AgentConfig> load_user_config(const std::filesystem::path& dir);

// What the command line gave ("" = not given).
struct AgentFlags {
  std::string edge, token, token_file, credential, ca, name, domain;
};

// WTMESH_TOKEN and WTMESH_CREDENTIAL (nullopt or "" = unset).
struct AgentEnvironment {
  std::optional<std::string> token, credential;
  static AgentEnvironment from_process();
};

// Where the edge, the secret and the rest come from once flags, environment and login are merged.
struct ResolvedAgent {
  std::string edge;
  std::string token;                                     // a token (--token, WTMESH_TOKEN, login)
  std::optional<std::filesystem::path> token_file;       // or a token file
  std::optional<std::filesystem::path> credential_file;  // or a credential file
  std::string credential_json;                           // or a credential's contents (WTMESH_CREDENTIAL)
  std::optional<std::filesystem::path> ca;
  std::string name, domain;  // "" when none was given anywhere (see default_tunnel_name)
  std::string secret_from;   // "--token", "WTMESH_TOKEN", "WTMESH_CREDENTIAL", "login (FILE)", ...
};

// The merge described at the top. nullopt with `error` set to one sentence: no edge anywhere, more
// than one secret flag, both environment variables, or no secret anywhere. `login_file` names the
// login in messages.
std::optional<ResolvedAgent> resolve_agent(const AgentFlags& flags, const AgentEnvironment& env,
                                           const std::optional<AgentConfig>& login,
                                           const std::filesystem::path& login_file, std::string* error);

// The tunnel name when --name is not given. `name`/`domain`: as resolved ("" = none). The domain:
// `domain`, else the credential's first host without its first label, else localhost. The name:
// `name`, else the first label of the credential's one exact host under that domain, else (a wildcard
// grant, or a token whose scope the agent cannot read) a random readable one, adjective-noun-NNNN.
struct TunnelName {
  std::string name, domain;
  bool random = false;
};
TunnelName default_tunnel_name(const std::string& name, const std::string& domain,
                               const tunnel::Credential* credential,
                               const std::function<uint32_t()>& random = {});

// "brisk-otter-4f2a" from four random values' worth of `random` (default: std::random_device).
std::string random_tunnel_name(const std::function<uint32_t()>& random = {});

}  // namespace wtmesh::agent
