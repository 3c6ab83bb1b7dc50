#include "wt/errors.h"

namespace wtmesh::wt {

std::optional<uint32_t> h3_to_wt_error(uint64_t h3_code) {
  if (h3_code < kWtAppErrorFirst || h3_code > kWtAppErrorLast) return std::nullopt;
  if (is_h3_grease_error(h3_code)) return std::nullopt;
  const uint64_t shifted = h3_code - kWtAppErrorFirst;
  return static_cast<uint32_t>(shifted - shifted / 0x1f);
}

}  // namespace wtmesh::wt
