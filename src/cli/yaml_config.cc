#include "cli/yaml_config.h"

#include <yaml-cpp/yaml.h>

#include <fstream>

namespace wtmesh::cli {
namespace {

constexpr size_t kMaxConfigBytes = 1 << 20;
constexpr size_t kMaxListItems = 4096;

std::string scalar(const YAML::Node& n, const std::string& key) {
  if (!n.IsScalar())
    throw CLI::ConversionError("config key '" + key + "': expected a value or a list of values");
  return n.Scalar();
}

}  // namespace

std::string YamlConfig::to_config(const CLI::App* app, bool default_also, bool /*write_description*/,
                                  std::string /*prefix*/) const {
  // Every option that has a value (or a default, with default_also), as YAML.
  YAML::Emitter out;
  out << YAML::BeginMap;
  for (const CLI::Option* opt : app->get_options()) {
    if (opt->get_lnames().empty() || !opt->get_configurable()) continue;
    std::vector<std::string> values = opt->reduced_results();
    if (values.empty() && default_also && !opt->get_default_str().empty()) values = {opt->get_default_str()};
    if (values.empty()) continue;
    out << YAML::Key << opt->get_lnames().front() << YAML::Value;
    if (values.size() == 1 && opt->get_expected_max() <= 1) {
      out << values.front();
    } else {
      out << YAML::Flow << values;
    }
  }
  out << YAML::EndMap;
  return std::string(out.c_str()) + "\n";
}

std::vector<CLI::ConfigItem> YamlConfig::from_config(std::istream& input) const {
  std::string text(kMaxConfigBytes + 1, '\0');
  input.read(text.data(), static_cast<std::streamsize>(text.size()));
  text.resize(static_cast<size_t>(input.gcount()));
  if (text.size() > kMaxConfigBytes) throw CLI::FileError("config file over 1 MiB");
  YAML::Node root;
  try {
    root = YAML::Load(text);
  } catch (const YAML::Exception& e) {
    throw CLI::ConversionError(std::string("config file is not YAML: ") + e.what());
  }
  std::vector<CLI::ConfigItem> items;
  if (root.IsNull()) return items;
  if (!root.IsMap()) throw CLI::ConversionError("config file: expected a map of option names to values");
  for (const auto& kv : root) {
    const std::string key = kv.first.as<std::string>();
    if (key.empty() || key.front() == '-') {
      throw CLI::ConversionError("config key '" + key + "': write option names without dashes");
    }
    CLI::ConfigItem item;
    item.name = key;
    const YAML::Node& v = kv.second;
    if (v.IsSequence()) {
      if (v.size() > kMaxListItems) throw CLI::ConversionError("config key '" + key + "': too many values");
      for (const auto& e : v) item.inputs.push_back(scalar(e, key));
    } else if (v.IsNull()) {
      item.inputs = {"true"};  // `http2:` alone: a flag, set
    } else {
      item.inputs = {scalar(v, key)};
    }
    items.push_back(std::move(item));
  }
  return items;
}

void apply_yaml_config(CLI::App& cmd, const std::string& file) {
  std::ifstream in(file, std::ios::binary);
  if (!in) throw CLI::FileError(file + ": cannot open the config file");
  std::vector<CLI::ConfigItem> items;
  try {
    items = YamlConfig().from_config(in);
  } catch (const CLI::Error& e) {
    throw CLI::ConversionError(file + ": " + e.what());
  }
  for (const auto& item : items) {
    CLI::Option* opt = cmd.get_option_no_throw("--" + item.name);
    if (opt == nullptr || item.name == "config" || item.name == "help") {
      throw CLI::ConversionError(file + ": '" + item.name + "' is not an option of `wtmesh " +
                                 cmd.get_name() + "`");
    }
    if (opt->count() > 0) continue;  // the command line wins
    try {
      opt->add_result(item.inputs);
      opt->run_callback();
    } catch (const CLI::Error& e) {
      throw CLI::ConversionError(file + ": " + item.name + ": " + e.what());
    }
  }
}

}  // namespace wtmesh::cli
