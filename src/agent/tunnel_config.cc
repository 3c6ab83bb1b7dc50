#include "agent/tunnel_config.h"

#include <yaml-cpp/yaml.h>

#include <boost/asio/ip/address.hpp>
#include <charconv>
#include <fstream>
#include <set>
#include <sstream>

#include "agent/edge_url.h"
#include "common/files.h"
#include "tunnel/token.h"

namespace wtmesh::agent {

namespace {

std::string at_line(const YAML::Node& n) {
  const auto m = n.Mark();
  return m.line >= 0 ? " (line " + std::to_string(m.line + 1) + ")" : std::string();
}

bool fail(std::string* error, std::string why) {
  if (error) *error = std::move(why);
  return false;
}

// A scalar string value, or an error naming `what`.
bool scalar(const YAML::Node& n, const std::string& what, std::string& out, std::string* error) {
  if (!n.IsScalar()) return fail(error, what + " must be a single value" + at_line(n));
  out = n.Scalar();
  return true;
}

// A scalar or a sequence of scalars.
bool scalar_list(const YAML::Node& n, const std::string& what, std::vector<std::string>& out,
                 std::string* error) {
  if (n.IsScalar()) {
    out.push_back(n.Scalar());
    return true;
  }
  if (!n.IsSequence()) return fail(error, what + " must be a value or a list of values" + at_line(n));
  for (const auto& v : n) {
    if (!v.IsScalar()) return fail(error, what + " must be a list of values" + at_line(v));
    out.push_back(v.Scalar());
  }
  return true;
}

bool parse_port(std::string_view s, uint16_t& out) {
  unsigned v = 0;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || p != s.data() + s.size() || v == 0 || v > 65535) return false;
  out = static_cast<uint16_t>(v);
  return true;
}

std::filesystem::path resolve(const std::filesystem::path& base, const std::string& p) {
  std::filesystem::path path(p);
  return path.is_absolute() || base.empty() ? path : base / path;
}

// "" leaves `out` as it is.
bool parse_bool(const std::string& s, bool& out) {
  if (s.empty()) return true;
  if (s == "true" || s == "yes" || s == "on") {
    out = true;
  } else if (s == "false" || s == "no" || s == "off") {
    out = false;
  } else {
    return false;
  }
  return true;
}

bool parse_tunnel(const YAML::Node& t, size_t index, const std::string& domain,
                  const std::filesystem::path& base_dir, TunnelSpec& spec, std::string* error) {
  const std::string where = "tunnels[" + std::to_string(index) + "]";
  if (!t.IsMap()) return fail(error, where + " must be a mapping with name and local_port" + at_line(t));
  std::string name, type = "http", port_text, upstream, protocol, tls, ca, sni, insecure;
  std::string remote_port, private_only, proxy_protocol;  // types tcp and udp only (proxy_protocol: tcp)
  std::vector<std::string> basic_auth, allow_cidr, deny_cidr, require_token;  // type http only
  std::string challenge;
  bool has_port = false, has_upstream = false, has_name = false;
  for (const auto& kv : t) {
    const std::string key = kv.first.Scalar();
    std::string* dst = nullptr;
    if (key == "basic_auth" || key == "allow_cidr" || key == "deny_cidr" || key == "require_token") {
      auto& list = key == "basic_auth"   ? basic_auth
                   : key == "allow_cidr" ? allow_cidr
                   : key == "deny_cidr"  ? deny_cidr
                                         : require_token;
      if (!scalar_list(kv.second, where + "." + key, list, error)) return false;
      continue;
    }
    if (key == "name") {
      dst = &name;
      has_name = true;
    } else if (key == "type") {
      dst = &type;
    } else if (key == "local_port") {
      dst = &port_text;
      has_port = true;
    } else if (key == "upstream") {
      dst = &upstream;
      has_upstream = true;
    } else if (key == "upstream_protocol") {
      dst = &protocol;
    } else if (key == "upstream_tls") {
      dst = &tls;
    } else if (key == "upstream_ca") {
      dst = &ca;
    } else if (key == "upstream_sni") {
      dst = &sni;
    } else if (key == "upstream_insecure") {
      dst = &insecure;
    } else if (key == "remote_port") {
      dst = &remote_port;
    } else if (key == "private") {
      dst = &private_only;
    } else if (key == "proxy_protocol") {
      dst = &proxy_protocol;
    } else if (key == "challenge") {
      dst = &challenge;
    } else {
      return fail(error, "unknown key \"" + key + "\" in " + where + at_line(kv.first) +
                             "; expected name, type, local_port, upstream, upstream_protocol, upstream_tls, "
                             "upstream_ca, upstream_sni, upstream_insecure, remote_port, private, "
                             "proxy_protocol, basic_auth, allow_cidr, deny_cidr, require_token or challenge");
    }
    if (!scalar(kv.second, where + "." + key, *dst, error)) return false;
  }
  if (!has_name) return fail(error, where + " has no name" + at_line(t));
  auto made = make_tunnel(name, domain, error);
  if (!made) {
    if (error) *error = where + ": " + *error + at_line(t);
    return false;
  }
  spec = std::move(*made);
  if (type != "http" && type != "tcp" && type != "udp") {
    return fail(error,
                where + " has type \"" + type + "\"; the types are http, tcp, udp and connect" + at_line(t));
  }
  spec.type = type;
  if (type != "http" && !(basic_auth.empty() && allow_cidr.empty() && deny_cidr.empty() &&
                          require_token.empty() && challenge.empty()))
    return fail(error,
                where +
                    ": basic_auth, allow_cidr, deny_cidr, require_token and challenge are for http tunnels" +
                    at_line(t));
  if (!challenge.empty() && challenge != "true" && challenge != "false")
    return fail(error, where + ".challenge must be true or false" + at_line(t));
  std::vector<std::string> key_files;
  for (const auto& f : require_token) {
    const std::filesystem::path p(f);
    key_files.push_back(resolve(base_dir, f));
  }
  if (!add_visitor_auth(spec.visitor, basic_auth, allow_cidr, deny_cidr, error) ||
      !add_visitor_tokens(spec.visitor, key_files, challenge == "true", error)) {
    if (error) *error = where + ": " + *error + at_line(t);
    return false;
  }
  if (type == "udp" && !proxy_protocol.empty())
    return fail(error, where + " is a udp tunnel: proxy_protocol is for tcp tunnels" + at_line(t));
  if (type == "tcp" || type == "udp") {
    if (!protocol.empty() || !tls.empty() || !ca.empty() || !sni.empty() || !insecure.empty())
      return fail(error,
                  where + " is a " + type + " tunnel: upstream_* options are for http tunnels" + at_line(t));
    if (!remote_port.empty() && !parse_port(remote_port, spec.remote_port))
      return fail(error, where + ".remote_port must be a port number from 1 to 65535, not \"" + remote_port +
                             "\"" + at_line(t));
    if (!parse_bool(private_only, spec.private_only) || !parse_bool(proxy_protocol, spec.proxy_protocol))
      return fail(error, where + ".private and .proxy_protocol must be true or false" + at_line(t));
    if (spec.private_only && spec.remote_port != 0)
      return fail(error, where + " is private: it has no remote_port" + at_line(t));
  } else if (!remote_port.empty() || !private_only.empty() || !proxy_protocol.empty()) {
    return fail(error,
                where +
                    ": remote_port, private and proxy_protocol are for tcp tunnels (the first two: udp too)" +
                    at_line(t));
  }
  if (has_port == has_upstream)
    return fail(error, where + " needs exactly one of local_port and upstream" + at_line(t));
  if (has_port) {
    if (!parse_port(port_text, spec.upstream_port)) {
      return fail(error, where + ".local_port must be a port number from 1 to 65535, not \"" + port_text +
                             "\"" + at_line(t));
    }
  } else if (!parse_upstream(upstream, spec, error)) {
    if (error) *error = where + ".upstream: " + *error + at_line(t);
    return false;
  }
  spec.upstream_protocol = protocol;
  if (!parse_bool(tls, spec.upstream_tls)) {
    return fail(error, where + ".upstream_tls must be true or false, not \"" + tls + "\"" + at_line(t));
  }
  if (!parse_bool(insecure, spec.upstream_insecure)) {
    return fail(error,
                where + ".upstream_insecure must be true or false, not \"" + insecure + "\"" + at_line(t));
  }
  if (!ca.empty()) spec.upstream_ca = resolve(base_dir, ca);
  spec.upstream_sni = sni;
  if (!check_upstream_options(spec, error)) {
    if (error) *error = where + ": " + *error + at_line(t);
    return false;
  }
  return true;
}

bool parse_connect(const YAML::Node& t, size_t index, ConnectSpec& spec, std::string* error) {
  const std::string where = "tunnels[" + std::to_string(index) + "]";
  std::string name, type, listen, udp;
  for (const auto& kv : t) {
    const std::string key = kv.first.Scalar();
    std::string* dst = key == "name"     ? &name
                       : key == "type"   ? &type
                       : key == "listen" ? &listen
                       : key == "udp"    ? &udp
                                         : nullptr;
    if (dst == nullptr) {
      return fail(error, "unknown key \"" + key + "\" in " + where + at_line(kv.first) +
                             "; a connect entry has name, type, listen and udp");
    }
    if (!scalar(kv.second, where + "." + key, *dst, error)) return false;
  }
  if (name.empty() || name.size() > 253 || !tunnel::is_valid_host_pattern(name, /*allow_wildcard=*/false))
    return fail(error, where + ": name \"" + name.substr(0, 64) + "\" is not a name" + at_line(t));
  TunnelSpec addr;
  if (listen.empty() || !parse_upstream(listen, addr, error)) {
    if (error) *error = where + ".listen must be HOST:PORT (e.g. 127.0.0.1:15432)" + at_line(t);
    return false;
  }
  if (!parse_bool(udp, spec.udp)) return fail(error, where + ".udp must be true or false" + at_line(t));
  spec.name = name;
  spec.listen_host = addr.upstream_host;
  spec.listen_port = addr.upstream_port;
  return true;
}

}  // namespace

std::string ConnectSpec::listen() const {
  return (listen_host.find(':') != std::string::npos ? "[" + listen_host + "]" : listen_host) + ":" +
         std::to_string(listen_port);
}

std::string TunnelSpec::upstream_url() const {
  if (type == "tcp" || type == "udp") return upstream();
  const std::string scheme = upstream_protocol == "h3"    ? "h3"
                             : upstream_tls               ? "https"
                             : upstream_protocol == "h2c" ? "h2c"
                                                          : "http";
  return scheme + "://" + upstream();
}

bool check_upstream_options(const TunnelSpec& spec, std::string* error) {
  const std::string& p = spec.upstream_protocol;
  if (!p.empty() && p != "http1" && p != "h2c" && p != "h3") {
    return fail(error, "upstream protocol must be http1, h2c or h3, not \"" + p + "\"");
  }
  if (p == "h2c" && spec.upstream_tls) {
    return fail(error, "h2c is HTTP/2 without TLS; with TLS to the upstream, ALPN picks h2 or http/1.1");
  }
  // h3 is always TLS (QUIC), so the TLS options apply to it without upstream_tls.
  const bool tls = spec.upstream_tls || p == "h3";
  if (!tls && (spec.upstream_ca || !spec.upstream_sni.empty() || spec.upstream_insecure)) {
    return fail(error,
                "the upstream CA, SNI and insecure options need TLS to the upstream (upstream_tls / "
                "--upstream-tls)");
  }
  if (spec.upstream_insecure && spec.upstream_ca) {
    return fail(error, "give either an upstream CA or insecure, not both");
  }
  return true;
}

bool add_visitor_tokens(tunnel::VisitorPolicy& policy, const std::vector<std::string>& key_files,
                        bool challenge, std::string* error) {
  for (const auto& file : key_files) {
    if (policy.token_keys.size() >= tunnel::kMaxTokenKeys)
      return fail(error, "at most " + std::to_string(tunnel::kMaxTokenKeys) + " --require-token keys");
    const auto pem = files::read_small_file(file);
    if (!pem) return fail(error, "require_token: cannot read " + file);
    std::string why;
    auto key = tunnel::visitor_token_key(*pem, &why);
    if (!key) return fail(error, "require_token: " + file + ": " + why);
    policy.token_keys.push_back(std::move(*key));
  }
  policy.challenge = policy.challenge || challenge;
  return true;
}

bool add_visitor_auth(tunnel::VisitorPolicy& policy, const std::vector<std::string>& basic,
                      const std::vector<std::string>& allow, const std::vector<std::string>& deny,
                      std::string* error) {
  std::string why;
  for (const auto& b : basic) {
    if (policy.basic.size() >= tunnel::kMaxBasicCredentials)
      return fail(error, "at most " + std::to_string(tunnel::kMaxBasicCredentials) + " basic auth users");
    auto c = tunnel::make_basic_credential(b, &why);
    if (!c) return fail(error, "basic auth \"" + b.substr(0, b.find(':')).substr(0, 32) + ":...\": " + why);
    policy.basic.push_back(std::move(*c));
  }
  const auto ranges = [&](const std::vector<std::string>& in, std::vector<tunnel::CidrRange>& out,
                          const char* what) {
    for (const auto& text : in) {
      if (out.size() >= tunnel::kMaxCidrs)
        return fail(error,
                    std::string("at most ") + std::to_string(tunnel::kMaxCidrs) + " " + what + " ranges");
      auto r = tunnel::parse_cidr(text, &why);
      if (!r) return fail(error, std::string(what) + ": " + why);
      out.push_back(*r);
    }
    return true;
  };
  return ranges(allow, policy.allow, "allow_cidr") && ranges(deny, policy.deny, "deny_cidr");
}

std::string TunnelSpec::upstream() const {
  return (upstream_host.find(':') != std::string::npos ? "[" + upstream_host + "]" : upstream_host) + ":" +
         std::to_string(upstream_port);
}

std::optional<TunnelSpec> make_tunnel(std::string_view name, std::string_view domain, std::string* error) {
  TunnelSpec spec;
  spec.name = std::string(name);
  // "*" is every name under the domain that no tunnel holds exactly (*.DOMAIN); "*.app" is every
  // one-label subdomain of app.DOMAIN. The token must list the same wildcard (wtmesh token --name).
  spec.hostname = name == "*" ? "*." + std::string(domain) : std::string(name) + "." + std::string(domain);
  for (char& c : spec.hostname) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  const std::string_view rest = name.starts_with("*.") ? name.substr(2) : name == "*" ? "x" : name;
  if (rest.empty() || rest.find('*') != std::string_view::npos ||
      !tunnel::is_valid_host_pattern(spec.hostname, /*allow_wildcard=*/true)) {
    if (error)
      *error = "\"" + std::string(name) + "\" does not make a valid hostname " + spec.hostname +
               " (use letters, digits and hyphens; \"*\" or \"*.NAME\" for a wildcard)";
    return std::nullopt;
  }
  return spec;
}

bool parse_upstream(std::string_view text, TunnelSpec& spec, std::string* error) {
  std::string host;
  std::string_view port;
  if (!text.empty() && text.front() == '[') {
    const auto close = text.find(']');
    if (close == std::string_view::npos || close + 1 >= text.size() || text[close + 1] != ':') {
      return fail(error, "\"" + std::string(text) + "\" is not HOST:PORT");
    }
    host = std::string(text.substr(1, close - 1));
    port = text.substr(close + 2);
  } else {
    const auto colon = text.rfind(':');
    if (colon == std::string_view::npos) return fail(error, "\"" + std::string(text) + "\" is not HOST:PORT");
    host = std::string(text.substr(0, colon));
    port = text.substr(colon + 1);
  }
  if (host == "localhost") host = "127.0.0.1";
  boost::system::error_code ec;
  boost::asio::ip::make_address(host, ec);
  if (ec) return fail(error, "the upstream host must be an IP address or localhost, not \"" + host + "\"");
  if (!parse_port(port, spec.upstream_port)) {
    return fail(error, "\"" + std::string(port) + "\" is not a port number from 1 to 65535");
  }
  spec.upstream_host = host;
  return true;
}

std::optional<AgentConfig> parse_agent_config(std::string_view text, const std::filesystem::path& base_dir,
                                              std::string* error, ConfigKind kind) {
  const bool user = kind == ConfigKind::kUser;
  YAML::Node root;
  try {
    root = YAML::Load(std::string(text));
  } catch (const YAML::Exception& e) {
    fail(error, "the file is not valid YAML: " + e.msg + " (line " + std::to_string(e.mark.line + 1) + ")");
    return std::nullopt;
  }
  if (!root.IsMap()) {
    fail(error, "the file must be a YAML mapping with edge, token and tunnels");
    return std::nullopt;
  }
  AgentConfig cfg;
  std::string ca, token_file, credential_file;
  bool has_tunnels = false;
  YAML::Node tunnels;
  for (const auto& kv : root) {
    const std::string key = kv.first.Scalar();
    bool ok = true;
    if (key == "edge") {
      ok = scalar(kv.second, "edge", cfg.edge, error);
    } else if (key == "ca") {
      ok = scalar(kv.second, "ca", ca, error);
    } else if (key == "token") {
      ok = scalar(kv.second, "token", cfg.token, error);
    } else if (key == "token_file") {
      ok = scalar(kv.second, "token_file", token_file, error);
    } else if (key == "credential_file") {
      ok = scalar(kv.second, "credential_file", credential_file, error);
    } else if (key == "session_token_ttl") {
      std::string ttl;
      ok = scalar(kv.second, "session_token_ttl", ttl, error);
      const auto d = tunnel::parse_duration(ttl);
      if (ok && !d) {
        fail(error, "session_token_ttl \"" + ttl + "\" is not a duration such as 30s or 5m (10s..30d)");
        return std::nullopt;
      }
      if (d) cfg.session_token_ttl = *d;
    } else if (key == "domain") {
      ok = scalar(kv.second, "domain", cfg.domain, error);
      cfg.has_domain = true;
    } else if (key == "name" && user) {
      ok = scalar(kv.second, "name", cfg.name, error);
      std::string why;
      if (ok && !make_tunnel(cfg.name, "localhost", &why)) {
        fail(error, "name: " + why);
        return std::nullopt;
      }
    } else if (key == "tunnels") {
      has_tunnels = true;
      tunnels = kv.second;
    } else {
      fail(error, "unknown key \"" + key + "\"" + at_line(kv.first) +
                      "; expected edge, ca, token, token_file, credential_file, session_token_ttl, domain" +
                      (user ? ", name" : "") + " or tunnels");
      return std::nullopt;
    }
    if (!ok) return std::nullopt;
  }
  std::string why;
  if (cfg.edge.empty() && !user) {
    fail(error, "edge is missing: give the edge's address, e.g. edge: https://127.0.0.1:4433");
    return std::nullopt;
  }
  if (!cfg.edge.empty() && !parse_edge_url(cfg.edge, &why)) {
    fail(error, "edge: " + why);
    return std::nullopt;
  }
  const int secrets = int{!cfg.token.empty()} + int{!token_file.empty()} + int{!credential_file.empty()};
  if (secrets > 1 || (secrets == 0 && !user)) {
    fail(error, std::string("give ") + (user ? "at most" : "exactly") +
                    " one of token, token_file and credential_file");
    return std::nullopt;
  }
  if (!ca.empty()) cfg.ca = resolve(base_dir, ca);
  if (!token_file.empty()) cfg.token_file = resolve(base_dir, token_file);
  if (!credential_file.empty()) cfg.credential_file = resolve(base_dir, credential_file);
  if (user && !has_tunnels) return cfg;  // `wtmesh login` alone: the edge and the secret
  if (!has_tunnels || !tunnels.IsSequence() || tunnels.size() == 0) {
    fail(error, "tunnels must be a non-empty list, e.g. tunnels: [{name: app, local_port: 3000}]");
    return std::nullopt;
  }
  if (tunnels.size() > kMaxTunnelsPerSession) {
    fail(error, "at most " + std::to_string(kMaxTunnelsPerSession) +
                    " tunnels fit on one session, the file has " + std::to_string(tunnels.size()));
    return std::nullopt;
  }
  std::set<std::string> seen;
  for (size_t i = 0; i < tunnels.size(); ++i) {
    if (tunnels[i].IsMap() && tunnels[i]["type"] && tunnels[i]["type"].IsScalar() &&
        tunnels[i]["type"].Scalar() == "connect") {
      ConnectSpec c;
      if (!parse_connect(tunnels[i], i, c, error)) return std::nullopt;
      cfg.connects.push_back(std::move(c));
      continue;
    }
    TunnelSpec spec;
    if (!parse_tunnel(tunnels[i], i, cfg.domain, base_dir, spec, error)) return std::nullopt;
    // One name per type: an http, a tcp and a udp tunnel may share it (the edge's routes are per type).
    if (!seen.insert(spec.type + " " + spec.hostname).second) {
      fail(error, "tunnels[" + std::to_string(i) + "] repeats the " + spec.type + " hostname " +
                      spec.hostname + at_line(tunnels[i]));
      return std::nullopt;
    }
    spec.id = static_cast<uint32_t>(i + 1);
    cfg.tunnels.push_back(std::move(spec));
  }
  return cfg;
}

std::optional<AgentConfig> load_agent_config(const std::filesystem::path& file, std::string* error,
                                             ConfigKind kind) {
  std::ifstream in(file, std::ios::binary);
  if (!in) {
    fail(error, "cannot read " + file.string());
    return std::nullopt;
  }
  std::string text;
  text.resize(kMaxConfigFileSize + 1);
  in.read(text.data(), static_cast<std::streamsize>(text.size()));
  text.resize(static_cast<size_t>(in.gcount()));
  if (text.size() > kMaxConfigFileSize) {
    fail(error, file.string() + " is larger than " + std::to_string(kMaxConfigFileSize / 1024) + " KiB");
    return std::nullopt;
  }
  auto cfg = parse_agent_config(text, file.parent_path(), error, kind);
  if (!cfg && error) *error = file.string() + ": " + *error;
  return cfg;
}

std::optional<std::string> read_token_file(const std::filesystem::path& file, std::string* error) {
  std::ifstream in(file, std::ios::binary);
  if (!in) {
    fail(error, "cannot read the token file " + file.string());
    return std::nullopt;
  }
  // A token is at most kMaxTokenSize bytes; read no more than that plus a little whitespace.
  std::string text(tunnel::kMaxTokenSize + 64, '\0');
  in.read(text.data(), static_cast<std::streamsize>(text.size()));
  text.resize(static_cast<size_t>(in.gcount()));
  size_t start = 0;
  while (start < text.size() && std::isspace(static_cast<unsigned char>(text[start]))) ++start;
  size_t end = start;
  while (end < text.size() && text[end] != '\n' && text[end] != '\r') ++end;
  std::string line = text.substr(start, end - start);
  while (!line.empty() && std::isspace(static_cast<unsigned char>(line.back()))) line.pop_back();
  if (line.empty()) {
    fail(error, "the token file " + file.string() + " is empty");
    return std::nullopt;
  }
  if (line.size() > tunnel::kMaxTokenSize) {
    fail(error, "the token file " + file.string() + " holds more than a token (over " +
                    std::to_string(tunnel::kMaxTokenSize) + " bytes)");
    return std::nullopt;
  }
  return line;
}

}  // namespace wtmesh::agent
