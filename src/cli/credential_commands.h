// The credential subcommands of the wtmesh binary (docs/protocol.md §6.1):
//   wtmesh credential --state-dir DIR --name NAME [--connect NAME]... [--valid 30d] [--domain D] [-o FILE]
//   wtmesh revoke --state-dir DIR ID
// and load_credential(), which the agent commands use for --credential / credential_file:.
#pragma once

#include <CLI/CLI.hpp>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "tunnel/credential.h"

namespace wtmesh::cli {

struct CredentialCommands {
  CLI::App* credential_cmd = nullptr;
  CLI::App* revoke_cmd = nullptr;
  struct {
    std::string state_dir, name, valid = "30d", domain = "localhost", output;
    std::vector<std::string> connect;
  } credential;
  struct {
    std::string state_dir, id;
  } revoke;
};

void add_credential_commands(CLI::App& app, CredentialCommands& commands);
// The exit status when one of these subcommands was chosen, nullopt otherwise.
std::optional<int> run_credential_command(const CredentialCommands& commands);

// The credential in `file`; throws std::runtime_error with a sentence. Warns on stderr when the file
// is readable by group or others (it holds a private key).
std::shared_ptr<const tunnel::Credential> load_credential(const std::filesystem::path& file);

}  // namespace wtmesh::cli
