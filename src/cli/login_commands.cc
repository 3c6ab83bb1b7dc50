#include "cli/login_commands.h"

#include <ctime>
#include <iostream>

namespace wtmesh::cli {
namespace {

std::string utc_day(std::chrono::system_clock::time_point t) {
  const std::time_t tt = std::chrono::system_clock::to_time_t(t);
  std::tm tm{};
  gmtime_r(&tt, &tm);
  char buf[32];
  std::strftime(buf, sizeof(buf), "%Y-%m-%d %H:%M UTC", &tm);
  return buf;
}

int run_logout() {
  const auto dir = agent::user_config_dir_from_env();
  const bool removed = agent::clear_login(dir);
  std::cerr << "wtmesh: " << (removed ? "logged out: removed the login from " : "no login to remove in ")
            << dir.string() << std::endl;
  return 0;
}

int run_login(const LoginCommands& c) {
  const auto& a = c.login;
  if (a.clear) return run_logout();
  if (a.edge.empty() || a.credential.empty())
    throw std::runtime_error("login needs --edge URL and --credential FILE (or --clear to log out)");
  agent::LoginOptions o;
  o.edge = a.edge;
  o.credential = a.credential;
  if (!a.ca.empty()) o.ca = a.ca;
  o.name = a.name;
  o.domain = a.domain;
  const auto dir = agent::user_config_dir_from_env();
  const tunnel::Credential cred = agent::save_login(dir, o);
  std::string hosts;
  for (const auto& h : cred.scope().hosts) hosts += (hosts.empty() ? "" : ", ") + h;
  std::cerr << "wtmesh: logged in to " << a.edge << " with credential " << cred.id() << " (" << hosts
            << ", valid until " << utc_day(cred.expires_at()) << ")\n"
            << "  saved in " << (dir / agent::kUserConfigFile).string() << " (mode 0600); the credential was "
            << "copied to " << (dir / agent::kUserCredentialFile).string() << " (mode 0600)\n"
            << "  now try: wtmesh http 3000    (wtmesh logout removes the login)" << std::endl;
  return 0;
}

}  // namespace

std::optional<StoredLogin> stored_login() {
  std::string error;
  const auto dir = agent::user_config_dir(std::getenv("XDG_CONFIG_HOME"), std::getenv("HOME"), &error);
  if (!dir) return std::nullopt;
  auto cfg = agent::load_user_config(*dir);
  if (!cfg) return std::nullopt;
  return StoredLogin{std::move(*cfg), *dir / agent::kUserConfigFile};
}

void add_login_commands(CLI::App& app, LoginCommands& c) {
  c.login_cmd = app.add_subcommand(
      "login",
      "store an edge and a credential in $XDG_CONFIG_HOME/wtmesh/agent.yml (default ~/.config) so that "
      "`wtmesh http 3000`, tcp, udp, connect, agent and doctor need no other flag");
  c.login_cmd->add_option("--edge", c.login.edge, "the edge, https://HOST:PORT");
  c.login_cmd->add_option("--credential", c.login.credential,
                          "credential file from `wtmesh credential` (copied, mode 0600, next to agent.yml)");
  c.login_cmd->add_option(
      "--ca", c.login.ca,
      "CA certificate to trust for the edge (e.g. STATE_DIR/ca.pem; kept by absolute path)");
  c.login_cmd->add_option("--name", c.login.name,
                          "default tunnel name (default: the credential's name, or a random one)");
  c.login_cmd->add_option("--domain", c.login.domain,
                          "the edge's tunnel domain (default: the credential's, or localhost)");
  c.login_cmd->add_flag("--clear", c.login.clear, "remove the stored login (as `wtmesh logout`)");
  c.logout_cmd = app.add_subcommand("logout", "remove the login `wtmesh login` stored");
}

std::optional<int> run_login_command(const LoginCommands& c) {
  if (c.login_cmd && *c.login_cmd) return run_login(c);
  if (c.logout_cmd && *c.logout_cmd) return run_logout();
  return std::nullopt;
}

}  // namespace wtmesh::cli
