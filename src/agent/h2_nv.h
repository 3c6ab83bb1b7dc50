// An nghttp2 header entry over two strings that outlive the nghttp2 call (nghttp2 copies them into
// its deflater). Shared by the agent's HTTP/2 clients (h2_upstream_session.cc, h2_wt_client.cc).
#pragma once

#include <nghttp2/nghttp2.h>

#include <cstdint>
#include <string>

namespace wtmesh::agent {

inline nghttp2_nv nv(const std::string& name, const std::string& value) {
  return nghttp2_nv{reinterpret_cast<uint8_t*>(const_cast<char*>(name.data())),
                    reinterpret_cast<uint8_t*>(const_cast<char*>(value.data())), name.size(), value.size(),
                    NGHTTP2_NV_FLAG_NONE};
}

}  // namespace wtmesh::agent
