// Small text helpers that HTTP parsing needs everywhere: one definition each (several files had their
// own copies, which also kept the unity build of CI from compiling).
#pragma once

#include <string_view>

namespace wtmesh {

// Optional whitespace (RFC 9110 §5.6.3: spaces and horizontal tabs) removed from both ends.
inline std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

// ASCII case-insensitive equality, as field names, tokens and schemes compare (RFC 9110 §5.1); no
// locale, so the same bytes compare the same everywhere.
inline bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    char x = a[i];
    char y = b[i];
    if (x >= 'A' && x <= 'Z') x = static_cast<char>(x - 'A' + 'a');
    if (y >= 'A' && y <= 'Z') y = static_cast<char>(y - 'A' + 'a');
    if (x != y) return false;
  }
  return true;
}

}  // namespace wtmesh
