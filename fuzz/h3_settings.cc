// libFuzzer target: SETTINGS payload parsing, and serialize→parse round trips of what we parsed.
#include <cstddef>
#include <cstdint>
#include <span>

#include "common/varint.h"
#include "h3/settings.h"

using namespace wtmesh::h3;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const SettingsParseResult r = parse_settings(std::span<const uint8_t>(data, size));
  if (!r.settings) {
    if (r.error == 0) __builtin_trap();  // failures always carry an error code
    return 0;
  }
  Settings s = r.settings->settings;
  if (s.max_field_section_size > wtmesh::kVarintMax) __builtin_trap();
  const auto again = parse_settings(serialize_settings_payload(s, size));
  if (!again.settings) __builtin_trap();  // what we send must parse
  if (again.settings->settings.max_field_section_size != s.max_field_section_size) __builtin_trap();
  return 0;
}
