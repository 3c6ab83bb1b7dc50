// Byte-vector helper shared by the tunnel wire tests.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <vector>

namespace wtmesh::tunnel::test {

inline std::vector<uint8_t> bytes(std::initializer_list<int> v) {
  std::vector<uint8_t> out;
  for (int b : v) out.push_back(static_cast<uint8_t>(b));
  return out;
}

}  // namespace wtmesh::tunnel::test
