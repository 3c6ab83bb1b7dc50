// WebTransport error codes: the 32-bit application code <-> HTTP/3 error code mapping
// (draft-ietf-webtrans-http3 §4.4; same formula as quiche web_transport_http3.cc and webtransport-go
// errors.go), and the HTTP/3 codes WebTransport registers. This is the one place that maps them.
#pragma once

#include <cstdint>
#include <optional>

namespace wtmesh::wt {

// HTTP/3 error codes registered by WebTransport (sent raw, not through the mapping).
inline constexpr uint64_t kWtBufferedStreamRejected = 0x3994bd84;
inline constexpr uint64_t kWtSessionGone = 0x170d7b68;
inline constexpr uint64_t kWtFlowControlError = 0x045d4487;
inline constexpr uint64_t kWtAlpnError = 0x0817b3dd;
inline constexpr uint64_t kWtRequirementsNotMet = 0x212c0d48;

// on_closed code for sessions that ended abnormally, whatever the transport (same value as the
// WT_SESSION_GONE H3 code).
inline constexpr uint32_t kSessionGoneCode = static_cast<uint32_t>(kWtSessionGone);

// The HTTP/3 range that carries WebTransport application codes 0..2^32-1.
inline constexpr uint64_t kWtAppErrorFirst = 0x52e4a40fa8db;
inline constexpr uint64_t kWtAppErrorLast = 0x52e5ac983162;

// HTTP/3 reserved (GREASE) error codes 0x1f * N + 0x21 (RFC 9114 §8.1).
constexpr bool is_h3_grease_error(uint64_t h3_code) { return h3_code >= 0x21 && (h3_code - 0x21) % 0x1f == 0; }

// WebTransport application code -> HTTP/3 code. Skips the GREASE codes inside the range.
constexpr uint64_t wt_to_h3_error(uint32_t code) { return kWtAppErrorFirst + code + code / 0x1e; }

// HTTP/3 code -> WebTransport application code; nullopt outside the range or for a GREASE code.
std::optional<uint32_t> h3_to_wt_error(uint64_t h3_code);

}  // namespace wtmesh::wt
