// Fuzzes the readers of a new public connection's first bytes (edge/first_bytes.h): the SNI of a
// ClientHello and the Host of a request head. Neither reads past the input nor crashes, and a name
// either gives back is lower-case, non-empty and at most 253 bytes long (SNI) or a normalized host.
#include <cstdint>
#include <cstdlib>
#include <span>

#include "edge/first_bytes.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::span<const uint8_t> in(data, size);
  if (auto name = wtmesh::edge::client_hello_server_name(in)) {
    if (name->empty() || name->size() > 253) std::abort();
    for (const char c : *name) {
      if (c >= 'A' && c <= 'Z') std::abort();
    }
  }
  if (auto host = wtmesh::edge::request_head_host(in)) {
    if (host->empty()) std::abort();
  }
  return 0;
}
