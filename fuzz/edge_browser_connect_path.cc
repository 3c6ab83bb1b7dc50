// Fuzzes the browser endpoint's path parser (/connect/NAME?token=TOKEN, edge/browser_connect_path.h):
// it never crashes; an accepted request has a valid lower-case host name and a non-empty token within
// kMaxTokenSize that occurs in the path; a refusal has a 4xx status and a sentence.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "edge/browser_connect_path.h"
#include "tunnel/token.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace wtmesh::edge;
  const std::string path =
      std::string(kConnectPathPrefix) + std::string(reinterpret_cast<const char*>(data), size);
  int status = 0;
  std::string error;
  const auto r = parse_browser_connect_path(path, "localhost", &status, &error);
  if (r) {
    if (!wtmesh::tunnel::is_valid_host_pattern(r->name, false)) __builtin_trap();
    for (char c : r->name) {
      if (c >= 'A' && c <= 'Z') __builtin_trap();
    }
    if (r->token.empty() || r->token.size() > wtmesh::tunnel::kMaxTokenSize) __builtin_trap();
    if (path.find(r->token) == std::string::npos) __builtin_trap();
  } else {
    if (status < 400 || status > 499 || error.empty()) __builtin_trap();
  }
  return 0;
}
