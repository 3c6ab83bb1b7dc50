#include "cli/credential_commands.h"

#include <sys/stat.h>
#include <unistd.h>

#include <ctime>
#include <iostream>

#include "agent/tunnel_config.h"
#include "tunnel/keystore.h"
#include "tunnel/revocation.h"

namespace wtmesh::cli {
namespace {

std::string utc_text(std::chrono::system_clock::time_point t) {
  const std::time_t tt = std::chrono::system_clock::to_time_t(t);
  std::tm tm{};
  gmtime_r(&tt, &tm);
  char buf[32];
  std::strftime(buf, sizeof(buf), "%Y-%m-%d %H:%M:%S UTC", &tm);
  return buf;
}

// As the edge reads a name: NAME alone is NAME.DOMAIN, "*" every NAME.DOMAIN.
std::string pattern_of(const std::string& name, const std::string& domain) {
  if (name == "*") return "*." + domain;
  return name.find('.') == std::string::npos ? name + "." + domain : name;
}

int run_credential(const CredentialCommands& c) {
  const auto& a = c.credential;
  const auto valid = tunnel::parse_duration(a.valid);
  if (!valid) {
    throw std::runtime_error("--valid \"" + a.valid +
                             "\" is not a duration such as 12h, 7d or 30d (at least 10s, at most 30d)");
  }
  std::string error;
  auto t = agent::make_tunnel(a.name, a.domain, &error);
  if (!t) throw std::runtime_error("--name: " + error);
  std::vector<std::string> connect;
  for (const auto& n : a.connect) {
    const std::string p = pattern_of(n, a.domain);
    if (!tunnel::is_valid_host_pattern(p))
      throw std::runtime_error("--connect \"" + n + "\" is not a name, NAME.DOMAIN or *.DOMAIN");
    connect.push_back(p);
  }
  tunnel::KeyStore store(a.state_dir);
  const tunnel::SigningKey edge_key = store.signing_key();
  const tunnel::Credential cred = tunnel::Credential::issue(edge_key, a.name, {t->hostname}, connect, *valid);
  if (a.output.empty()) {
    // `> agent.cred` made the file with the shell's umask: a file that holds a private key is 0600.
    struct stat st {};
    if (::fstat(STDOUT_FILENO, &st) == 0 && S_ISREG(st.st_mode) && (st.st_mode & 077) != 0 &&
        ::fchmod(STDOUT_FILENO, 0600) != 0) {
      std::cerr << "wtmesh: warning: cannot make the output file mode 0600" << std::endl;
    }
    std::cout << cred.to_json() << std::flush;
  } else {
    cred.save(a.output);
  }
  std::cerr << "wtmesh: credential " << cred.id() << " for " << t->hostname
            << (connect.empty() ? "" : " (connect: " + std::to_string(connect.size()) + " name(s))")
            << ", valid until " << utc_text(cred.expires_at())
            << (a.output.empty() ? "" : ", written to " + a.output + " (mode 0600)")
            << "; revoke it with: wtmesh revoke --state-dir " << a.state_dir << " " << cred.id() << std::endl;
  return 0;
}

int run_revoke(const CredentialCommands& c) {
  const auto file = tunnel::RevocationList::file_in(c.revoke.state_dir);
  if (!tunnel::is_valid_credential_id(c.revoke.id))
    throw std::runtime_error("\"" + c.revoke.id.substr(0, 80) + "\" is not a credential id");
  const bool added = tunnel::RevocationList::add(file, c.revoke.id);
  std::cerr << "wtmesh: credential " << c.revoke.id << (added ? " revoked" : " was revoked already") << " ("
            << file.string() << "); a running edge closes its sessions within a few seconds" << std::endl;
  return 0;
}

}  // namespace

std::shared_ptr<const tunnel::Credential> load_credential(const std::filesystem::path& file) {
  struct stat st {};
  if (::stat(file.c_str(), &st) == 0 && (st.st_mode & 077) != 0) {
    std::cerr << "wtmesh: warning: " << file.string()
              << " is readable by other users and holds a private key (chmod 600 it)" << std::endl;
  }
  return std::make_shared<const tunnel::Credential>(tunnel::Credential::load(file));
}

void add_credential_commands(CLI::App& app, CredentialCommands& c) {
  c.credential_cmd = app.add_subcommand(
      "credential",
      "issue an agent credential: its own key and the edge's grant (publish NAME.DOMAIN, reach --connect)");
  c.credential_cmd
      ->add_option("--state-dir", c.credential.state_dir,
                   "the edge's state directory (its keys/ signs the grant)")
      ->required();
  c.credential_cmd
      ->add_option("--name", c.credential.name, "tunnel name; the credential may publish NAME.DOMAIN")
      ->required();
  c.credential_cmd->add_option(
      "--connect", c.credential.connect,
      "a name the agent may reach with `wtmesh connect` (NAME, NAME.DOMAIN, \"*\"; repeatable)");
  c.credential_cmd->add_option("--valid", c.credential.valid, "how long the credential lasts: 12h, 7d, 30d")
      ->capture_default_str();
  c.credential_cmd->add_option("--domain", c.credential.domain, "the edge's tunnel domain")
      ->capture_default_str();
  c.credential_cmd->add_option(
      "-o,--output", c.credential.output,
      "write it to this file (mode 0600) instead of stdout (where `>` gives the file "
      "your umask's mode)");

  c.revoke_cmd =
      app.add_subcommand("revoke", "revoke a credential by id: its sessions end, new ones are refused");
  c.revoke_cmd->add_option("--state-dir", c.revoke.state_dir, "the edge's state directory")->required();
  c.revoke_cmd->add_option("ID", c.revoke.id, "the credential's id (printed by `wtmesh credential`)")
      ->required();
}

std::optional<int> run_credential_command(const CredentialCommands& c) {
  if (c.credential_cmd && *c.credential_cmd) return run_credential(c);
  if (c.revoke_cmd && *c.revoke_cmd) return run_revoke(c);
  return std::nullopt;
}

}  // namespace wtmesh::cli
