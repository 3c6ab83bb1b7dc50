// `wtmesh edge --config FILE`: a YAML file whose keys are the edge's long option names without the
// dashes (`listen: 0.0.0.0:443`, `allow-origin: [https://a.example]`, `route: [db=10.0.0.5:5432]`).
// Options given on the command line win over the file. A key that names no option, a nested map, or a
// file over 1 MiB is a clear error. The values go through each option's own checks.
#pragma once

#include <CLI/CLI.hpp>
#include <istream>
#include <string>
#include <vector>

namespace wtmesh::cli {

// Applies FILE to the parsed command `cmd`: each key's option, unless the command line gave it, gets
// the file's values and runs its checks and callback. Throws CLI::ParseError (FileError,
// ConversionError, ValidationError) naming the key.
void apply_yaml_config(CLI::App& cmd, const std::string& file);

// The same reading as a CLI11 config formatter (for a top-level command's set_config).
class YamlConfig final : public CLI::Config {
 public:
  std::string to_config(const CLI::App* app, bool default_also, bool write_description,
                        std::string prefix) const override;
  std::vector<CLI::ConfigItem> from_config(std::istream& input) const override;
};

}  // namespace wtmesh::cli
