// Fuzzes the agent's YAML config loader (`wtmesh agent --config FILE`, and the user's config that
// `wtmesh login` writes, ConfigKind::kUser): any bytes as the file's
// text give either a config that satisfies its documented invariants or one non-empty error
// sentence; never a crash, an escaping exception, a hang or an unbounded allocation. The tunnel
// name and upstream helpers get the same bytes directly.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <set>
#include <string>
#include <string_view>

#include "agent/tunnel_config.h"

namespace {

// An invariant does not hold: say which before libFuzzer saves the input.
[[noreturn]] void broken(int line) {
  std::fprintf(stderr, "%s:%d: invariant broken\n", __FILE__, line);
  std::abort();
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace wtmesh::agent;
  if (size > kMaxConfigFileSize) return 0;  // load_agent_config refuses larger files unread
  const std::string_view text(reinterpret_cast<const char*>(data), size);

  std::string error;
  const auto cfg = parse_agent_config(text, "/etc/wtmesh", &error);
  if (!cfg) {
    if (error.empty()) broken(__LINE__);
  } else {
    const int secrets =
        int{!cfg->token.empty()} + int{cfg->token_file.has_value()} + int{cfg->credential_file.has_value()};
    if (cfg->edge.empty() || secrets != 1 || !cfg->name.empty()) broken(__LINE__);
    if (cfg->tunnels.empty() || cfg->tunnels.size() > kMaxTunnelsPerSession) broken(__LINE__);
    if (cfg->ca && cfg->ca->is_relative()) broken(__LINE__);  // resolved against the file's folder
    if (cfg->token_file && cfg->token_file->is_relative()) broken(__LINE__);
    std::set<std::string> hosts;
    for (size_t i = 0; i < cfg->tunnels.size(); ++i) {
      const auto& t = cfg->tunnels[i];
      if (t.id != i + 1 || t.upstream_port == 0 || t.name.empty()) broken(__LINE__);
      if (t.type != "http" && t.type != "tcp" && t.type != "udp") broken(__LINE__);
      if (!hosts.insert(t.type + " " + t.hostname).second) broken(__LINE__);
      // upstream() is what the agent dials and logs: it must parse back to the same spec.
      TunnelSpec back;
      std::string why;
      if (!parse_upstream(t.upstream(), back, &why) || back.upstream_host != t.upstream_host ||
          back.upstream_port != t.upstream_port)
        broken(__LINE__);
    }
  }

  // The same text as the user's config: tunnels, secret and edge optional, a default name.
  error.clear();
  if (const auto user = parse_agent_config(text, "/home/u/.config/wtmesh", &error, ConfigKind::kUser)) {
    const int secrets = int{!user->token.empty()} + int{user->token_file.has_value()} +
                        int{user->credential_file.has_value()};
    if (secrets > 1 || user->tunnels.size() > kMaxTunnelsPerSession) broken(__LINE__);
    if (user->credential_file && user->credential_file->is_relative()) broken(__LINE__);
    if (!user->name.empty() && !make_tunnel(user->name, "localhost", nullptr)) broken(__LINE__);
    // Whatever the agent file accepts, the user file accepts too.
  } else if (error.empty() || cfg) {
    broken(__LINE__);
  }

  // The helpers on the raw text (the CLI passes user strings to them too).
  const std::string_view line = text.substr(0, std::min<size_t>(text.size(), 300));
  TunnelSpec spec;
  std::string why;
  if (parse_upstream(line, spec, &why)) {
    if (spec.upstream_port == 0 || spec.upstream_host.empty()) broken(__LINE__);
  } else if (why.empty()) {
    broken(__LINE__);
  }
  why.clear();
  if (auto t = make_tunnel(line, "localhost", &why)) {
    if (t->hostname.size() <= line.size()) broken(__LINE__);
  } else if (why.empty()) {
    broken(__LINE__);
  }
  return 0;
}
