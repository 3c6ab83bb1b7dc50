// `wtmesh login` and `wtmesh logout` (agent/user_config.h keeps the login):
//   wtmesh login --edge https://HOST:PORT --credential FILE [--ca FILE] [--name NAME] [--domain D]
//   wtmesh login --clear        (the same as `wtmesh logout`)
//   wtmesh logout
// and the helpers other commands use to read the login.
#pragma once

#include <CLI/CLI.hpp>
#include <optional>
#include <string>

#include "agent/user_config.h"

namespace wtmesh::cli {

struct LoginCommands {
  CLI::App* login_cmd = nullptr;
  CLI::App* logout_cmd = nullptr;
  struct {
    std::string edge, credential, ca, name, domain;
    bool clear = false;
  } login;
};

void add_login_commands(CLI::App& app, LoginCommands& commands);
// The exit status when `login` or `logout` was chosen, nullopt otherwise.
std::optional<int> run_login_command(const LoginCommands& commands);

// The stored login and the file it is in; nullopt when there is none (or no HOME to find it by).
// Throws std::runtime_error for a login file that does not parse.
struct StoredLogin {
  agent::AgentConfig config;
  std::filesystem::path file;
};
std::optional<StoredLogin> stored_login();

}  // namespace wtmesh::cli
