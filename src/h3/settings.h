// HTTP/3 SETTINGS (RFC 9114 §7.2.4) with the extended-CONNECT, HTTP-datagram and WebTransport
// codepoints: parse a peer's SETTINGS payload strictly, serialize ours. Sans-I/O.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "h3/connection.h"

namespace wtmesh::h3 {

constexpr uint64_t kSettingQpackMaxTableCapacity = 0x01;
constexpr uint64_t kSettingMaxFieldSectionSize = 0x06;
constexpr uint64_t kSettingQpackBlockedStreams = 0x07;
constexpr uint64_t kSettingEnableConnectProtocol = 0x08;  // RFC 9220
constexpr uint64_t kSettingH3Datagram = 0x33;             // RFC 9297
constexpr uint64_t kSettingH3DatagramDraft04 = 0xffd277;  // accepted on receive only
// WebTransport, one codepoint per draft generation.
constexpr uint64_t kSettingWtEnableDraft02 = 0x2b603742;       // ENABLE_WEBTRANSPORT (bool)
constexpr uint64_t kSettingWtMaxSessionsDraft07 = 0xc671706a;  // WEBTRANSPORT_MAX_SESSIONS
constexpr uint64_t kSettingWtDraft13 = 0x14e9cd29;
constexpr uint64_t kSettingWtDraft15 = 0x2c7cf000;
// WebTransport flow control (draft-12+); parsed, never sent (0 = flow control off).
constexpr uint64_t kSettingWtInitialMaxData = 0x2b61;
constexpr uint64_t kSettingWtInitialMaxStreamsUni = 0x2b64;
constexpr uint64_t kSettingWtInitialMaxStreamsBidi = 0x2b65;

// Largest number of (id, value) pairs we accept in one SETTINGS frame; the frame itself is bounded by
// Config::max_control_frame_size, this bounds the duplicate check.
constexpr size_t kMaxSettingsPairs = 256;

// Everything we read from a peer's SETTINGS frame.
struct PeerSettings {
  // Absent settings take their RFC defaults: max_field_section_size unlimited (kVarintMax), the rest 0.
  Settings settings;
  // Which WebTransport codepoints were present (draft detection) and the flow-control settings.
  bool wt_draft02 = false;
  bool wt_draft07 = false;
  bool wt_draft13 = false;
  bool wt_draft15 = false;
  uint64_t wt_initial_max_data = 0;
  uint64_t wt_initial_max_streams_uni = 0;
  uint64_t wt_initial_max_streams_bidi = 0;
};

struct SettingsParseResult {
  std::optional<PeerSettings> settings;  // set on success
  uint64_t error = 0;                    // H3 error code on failure (H3_SETTINGS_ERROR, H3_FRAME_ERROR...)
  std::string reason;
};

// Parses a SETTINGS frame payload. Rejects duplicates, HTTP/2 settings 0x02-0x05, boolean settings
// above 1, truncated pairs (H3_FRAME_ERROR) and more than kMaxSettingsPairs; ignores unknown and
// reserved identifiers.
SettingsParseResult parse_settings(std::span<const uint8_t> payload);

// Serializes our SETTINGS payload: the QPACK and field-section settings, 0x08/0x33 when enabled, the
// four WebTransport codepoints when `webtransport`, and one GREASE setting (`grease_seed` picks N).
std::vector<uint8_t> serialize_settings_payload(const Settings& s, uint64_t grease_seed = 0);
// The whole SETTINGS frame (type + length + payload).
std::vector<uint8_t> serialize_settings_frame(const Settings& s, uint64_t grease_seed = 0);

}  // namespace wtmesh::h3
