#include "agent/user_config.h"

#include <sys/stat.h>
#include <yaml-cpp/yaml.h>

#include <array>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <stdexcept>
#include <system_error>

#include "agent/edge_url.h"
#include "common/files.h"
#include "tunnel/host_pattern.h"

namespace wtmesh::agent {
namespace fs = std::filesystem;

namespace {

// The keys a login owns in agent.yml; clear_login() removes them, save_login() rewrites them.
constexpr std::array<const char*, 7> kLoginKeys = {"edge", "ca",    "token", "token_file", "credential_file",
                                                   "name", "domain"};

// The YAML map of dir/agent.yml, or an empty map when there is none. Throws for a file that is not a
// map.
YAML::Node read_user_yaml(const fs::path& file) {
  const auto text = files::read_small_file(file, kMaxConfigFileSize);
  if (!text) return YAML::Node(YAML::NodeType::Map);
  YAML::Node root;
  try {
    root = YAML::Load(*text);
  } catch (const YAML::Exception& e) {
    throw std::runtime_error(file.string() + " is not valid YAML: " + e.msg);
  }
  if (root.IsNull()) return YAML::Node(YAML::NodeType::Map);
  if (!root.IsMap()) throw std::runtime_error(file.string() + " is not a YAML mapping");
  return root;
}

std::string emit(const YAML::Node& root) {
  YAML::Emitter out;
  out << root;
  return std::string(out.c_str()) + "\n";
}

// The same edge: equal URLs but for a trailing slash.
bool same_edge(std::string a, std::string b) {
  while (!a.empty() && a.back() == '/') a.pop_back();
  while (!b.empty() && b.back() == '/') b.pop_back();
  return a == b;
}

uint32_t system_random() {
  static std::random_device device;
  return device();
}

}  // namespace

std::optional<fs::path> user_config_dir(const char* xdg_config_home, const char* home, std::string* error) {
  if (xdg_config_home != nullptr && fs::path(xdg_config_home).is_absolute())
    return fs::path(xdg_config_home) / "wtmesh";
  if (home != nullptr && fs::path(home).is_absolute()) return fs::path(home) / ".config" / "wtmesh";
  if (error) *error = "neither XDG_CONFIG_HOME nor HOME is an absolute path: no place for the user's config";
  return std::nullopt;
}

fs::path user_config_dir_from_env() {
  std::string error;
  auto dir = user_config_dir(std::getenv("XDG_CONFIG_HOME"), std::getenv("HOME"), &error);
  if (!dir) throw std::runtime_error(error);
  return *dir;
}

tunnel::Credential save_login(const fs::path& dir, const LoginOptions& o) {
  std::string why;
  if (!parse_edge_url(o.edge, &why)) throw std::runtime_error("--edge: " + why);
  tunnel::Credential credential = tunnel::Credential::load(o.credential);
  if (credential.expires_at() <= std::chrono::system_clock::now())
    throw std::runtime_error(o.credential.string() + ": the credential has expired; ask for a new one");
  std::optional<fs::path> ca;
  if (o.ca) {
    std::error_code ec;
    ca = fs::absolute(*o.ca, ec);
    if (ec || !fs::is_regular_file(*ca, ec))
      throw std::runtime_error("--ca " + o.ca->string() + " is not a file");
  }
  if (!o.name.empty() && !make_tunnel(o.name, o.domain.empty() ? "localhost" : o.domain, &why))
    throw std::runtime_error("--name: " + why);
  if (!o.domain.empty() && !tunnel::is_valid_host_pattern(o.domain, /*allow_wildcard=*/false))
    throw std::runtime_error("--domain \"" + o.domain + "\" is not a DNS name");

  // ~/.config too, when we make it: the XDG spec wants 0700 for it.
  if (dir.has_parent_path()) files::ensure_private_dir(dir.parent_path());
  files::ensure_private_dir(dir);
  ::chmod(dir.c_str(), 0700);  // ours alone, even if it existed with a looser mode
  const fs::path file = dir / kUserConfigFile;
  YAML::Node root = read_user_yaml(file);
  for (const char* key : kLoginKeys) root.remove(key);
  root["edge"] = o.edge;
  root["credential_file"] = kUserCredentialFile;
  if (ca) root["ca"] = ca->string();
  if (!o.name.empty()) root["name"] = o.name;
  if (!o.domain.empty()) root["domain"] = o.domain;
  const std::string text = emit(root);
  // What we write must read back (tunnels kept from before are checked with the new domain).
  if (!parse_agent_config(text, dir, &why, ConfigKind::kUser))
    throw std::runtime_error(file.string() + " would not be valid with this login: " + why);
  files::write_file_atomic(dir / kUserCredentialFile, credential.to_json(), 0600);
  files::write_file_atomic(file, text, 0600);
  files::sync_dir(dir);
  return credential;
}

bool clear_login(const fs::path& dir) {
  const fs::path file = dir / kUserConfigFile, cred = dir / kUserCredentialFile;
  std::error_code ec;
  bool removed = fs::remove(cred, ec);
  if (!fs::exists(file, ec)) return removed;
  YAML::Node root = read_user_yaml(file);
  for (const char* key : kLoginKeys) removed = root.remove(key) || removed;
  if (root.size() == 0) {
    fs::remove(file, ec);
    if (ec) throw std::runtime_error("cannot remove " + file.string() + ": " + ec.message());
  } else {
    files::write_file_atomic(file, emit(root), 0600);
  }
  return removed;
}

std::optional<AgentConfig> load_user_config(const fs::path& dir) {
  const fs::path file = dir / kUserConfigFile;
  std::error_code ec;
  if (!fs::exists(file, ec)) return std::nullopt;
  std::string error;
  auto cfg = load_agent_config(file, &error, ConfigKind::kUser);
  if (!cfg) throw std::runtime_error(error + " (fix it, or run `wtmesh logout` and log in again)");
  return cfg;
}

AgentEnvironment AgentEnvironment::from_process() {
  AgentEnvironment env;
  if (const char* t = std::getenv("WTMESH_TOKEN"); t != nullptr && *t != '\0') env.token = t;
  if (const char* c = std::getenv("WTMESH_CREDENTIAL"); c != nullptr && *c != '\0') env.credential = c;
  return env;
}

std::optional<ResolvedAgent> resolve_agent(const AgentFlags& flags, const AgentEnvironment& env,
                                           const std::optional<AgentConfig>& login,
                                           const fs::path& login_file, std::string* error) {
  const auto fail = [&](const std::string& why) -> std::optional<ResolvedAgent> {
    if (error) *error = why;
    return std::nullopt;
  };
  ResolvedAgent r;
  r.edge = !flags.edge.empty() ? flags.edge : login ? login->edge : "";
  if (r.edge.empty()) {
    return fail(
        "no edge: give --edge https://HOST:PORT, or log in once with `wtmesh login --edge URL "
        "--credential FILE`");
  }
  // The login's secret, CA, name and domain belong to the login's edge.
  const AgentConfig* own = login && same_edge(login->edge, r.edge) ? &*login : nullptr;

  const int secret_flags =
      int{!flags.token.empty()} + int{!flags.token_file.empty()} + int{!flags.credential.empty()};
  if (secret_flags > 1) return fail("give at most one of --token, --token-file and --credential");
  const bool env_token = env.token && !env.token->empty();
  const bool env_credential = env.credential && !env.credential->empty();
  if (!flags.token.empty()) {
    r.token = flags.token;
    r.secret_from = "--token";
  } else if (!flags.token_file.empty()) {
    r.token_file = flags.token_file;
    r.secret_from = "--token-file";
  } else if (!flags.credential.empty()) {
    r.credential_file = flags.credential;
    r.secret_from = "--credential";
  } else if (env_token && env_credential) {
    return fail("both WTMESH_TOKEN and WTMESH_CREDENTIAL are set: unset one");
  } else if (env_token) {
    r.token = *env.token;
    r.secret_from = "WTMESH_TOKEN";
  } else if (env_credential) {
    // A credential file is JSON: a value that starts with "{" is the file's contents, anything else
    // its path.
    if (env.credential->front() == '{') {
      r.credential_json = *env.credential;
    } else {
      r.credential_file = *env.credential;
    }
    r.secret_from = "WTMESH_CREDENTIAL";
  } else if (own != nullptr && (!own->token.empty() || own->token_file || own->credential_file)) {
    r.token = own->token;
    r.token_file = own->token_file;
    r.credential_file = own->credential_file;
    r.secret_from = "login (" + login_file.string() + ")";
  } else {
    return fail(std::string("no credential for ") + r.edge +
                ": give --credential FILE or --token-file FILE, set WTMESH_CREDENTIAL or WTMESH_TOKEN, or "
                "log in once with `wtmesh login --edge " +
                r.edge + " --credential FILE`" +
                (login && own == nullptr
                     ? " (the login in " + login_file.string() + " is for " + login->edge + ")"
                     : ""));
  }
  if (!flags.ca.empty()) {
    r.ca = flags.ca;
  } else if (own != nullptr) {
    r.ca = own->ca;
  }
  r.name = !flags.name.empty() ? flags.name : own != nullptr ? own->name : "";
  r.domain = !flags.domain.empty() ? flags.domain : own != nullptr && own->has_domain ? own->domain : "";
  return r;
}

std::string random_tunnel_name(const std::function<uint32_t()>& random) {
  static constexpr std::array<const char*, 32> kAdjectives = {
      "amber", "brave", "brisk",  "calm",   "clever", "cosmic", "crisp", "dapper", "eager", "fancy", "gentle",
      "happy", "jolly", "keen",   "lively", "lucky",  "mellow", "merry", "nimble", "proud", "quick", "quiet",
      "rapid", "shiny", "silent", "snowy",  "sunny",  "swift",  "tidy",  "vivid",  "witty", "zesty"};
  static constexpr std::array<const char*, 32> kNouns = {
      "badger", "bison", "cedar", "comet",   "coral",  "crane", "delta",  "dune",
      "falcon", "fern",  "fjord", "gecko",   "harbor", "heron", "island", "koala",
      "lagoon", "lynx",  "maple", "meadow",  "nebula", "otter", "panda",  "pebble",
      "quartz", "raven", "river", "sparrow", "tiger",  "tulip", "walrus", "willow"};
  const std::function<uint32_t()>& rnd = random ? random : std::function<uint32_t()>(system_random);
  char suffix[8];
  std::snprintf(suffix, sizeof suffix, "%04x", rnd() & 0xffff);
  const char* adjective = kAdjectives[rnd() % kAdjectives.size()];
  const char* noun = kNouns[rnd() % kNouns.size()];
  return std::string(adjective) + "-" + noun + "-" + suffix;
}

TunnelName default_tunnel_name(const std::string& name, const std::string& domain,
                               const tunnel::Credential* credential,
                               const std::function<uint32_t()>& random) {
  TunnelName t{name, domain, false};
  const std::vector<std::string> hosts = credential ? credential->scope().hosts : std::vector<std::string>{};
  if (t.domain.empty()) {
    for (const auto& h : hosts) {
      if (auto parent = tunnel::wildcard_parent(h)) {
        t.domain = std::string(*parent);
        break;
      }
    }
  }
  if (t.domain.empty()) t.domain = "localhost";
  if (t.name.empty()) {
    for (const auto& h : hosts) {
      if (h.starts_with("*.")) continue;
      if (auto parent = tunnel::wildcard_parent(h); parent && *parent == t.domain) {
        t.name = h.substr(0, h.size() - parent->size() - 1);
        break;
      }
    }
  }
  if (t.name.empty()) {
    t.name = random_tunnel_name(random);
    t.random = true;
  }
  return t;
}

}  // namespace wtmesh::agent
