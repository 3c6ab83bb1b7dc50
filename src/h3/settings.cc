// SETTINGS parse/serialize.
#include "h3/settings.h"

#include <algorithm>

#include "common/varint.h"
#include "h3/error_codes.h"
#include "h3/frames.h"

namespace wtmesh::h3 {
namespace {

SettingsParseResult failure(uint64_t code, std::string reason) {
  SettingsParseResult r;
  r.error = code;
  r.reason = std::move(reason);
  return r;
}

bool is_bool_setting(uint64_t id) {
  return id == kSettingEnableConnectProtocol || id == kSettingH3Datagram || id == kSettingH3DatagramDraft04 ||
         id == kSettingWtEnableDraft02;
}

}  // namespace

SettingsParseResult parse_settings(std::span<const uint8_t> payload) {
  PeerSettings out;
  out.settings.max_field_section_size = kVarintMax;  // absent = unlimited (RFC 9114 §7.2.4.1)
  out.settings.wt_max_sessions = 0;
  bool sessions_sent = false;
  std::vector<uint64_t> seen;
  size_t pos = 0;
  while (pos < payload.size()) {
    auto id = read_varint(payload.subspan(pos));
    if (!id) return failure(kH3FrameError, "truncated SETTINGS identifier");
    pos += id->length;
    auto value = read_varint(payload.subspan(pos));
    if (!value) return failure(kH3FrameError, "truncated SETTINGS value");
    pos += value->length;
    if (seen.size() >= kMaxSettingsPairs) return failure(kH3ExcessiveLoad, "too many SETTINGS");
    if (std::find(seen.begin(), seen.end(), id->value) != seen.end()) {
      return failure(kH3SettingsError, "duplicate SETTINGS identifier");
    }
    seen.push_back(id->value);
    const uint64_t v = value->value;
    if (id->value >= 0x02 && id->value <= 0x05)
      return failure(kH3SettingsError, "HTTP/2 setting in SETTINGS");
    if (is_bool_setting(id->value) && v > 1) return failure(kH3SettingsError, "boolean setting above 1");
    switch (id->value) {
      case kSettingQpackMaxTableCapacity:
        out.settings.qpack_max_table_capacity = v;
        break;
      case kSettingMaxFieldSectionSize:
        out.settings.max_field_section_size = v;
        break;
      case kSettingQpackBlockedStreams:
        out.settings.qpack_blocked_streams = v;
        break;
      case kSettingEnableConnectProtocol:
        out.settings.enable_connect_protocol = v == 1;
        break;
      case kSettingH3Datagram:
      case kSettingH3DatagramDraft04:
        out.settings.h3_datagram = out.settings.h3_datagram || v == 1;
        break;
      case kSettingWtEnableDraft02:
        out.wt_draft02 = v != 0;
        break;
      case kSettingWtMaxSessionsDraft07:
        out.wt_draft07 = v != 0;
        out.settings.wt_max_sessions = v;
        sessions_sent = true;
        break;
      case kSettingWtDraft13:
        out.wt_draft13 = v != 0;
        break;
      case kSettingWtDraft15:
        out.wt_draft15 = v != 0;
        break;
      case kSettingWtInitialMaxData:
        out.wt_initial_max_data = v;
        break;
      case kSettingWtInitialMaxStreamsUni:
        out.wt_initial_max_streams_uni = v;
        break;
      case kSettingWtInitialMaxStreamsBidi:
        out.wt_initial_max_streams_bidi = v;
        break;
      default:
        break;  // unknown or reserved: ignored
    }
  }
  out.settings.webtransport = out.wt_draft02 || out.wt_draft07 || out.wt_draft13 || out.wt_draft15;
  // Drafts without a session count allow one session.
  if (!sessions_sent && out.settings.webtransport) out.settings.wt_max_sessions = 1;
  SettingsParseResult r;
  r.settings = out;
  return r;
}

std::vector<uint8_t> serialize_settings_payload(const Settings& s, uint64_t grease_seed) {
  std::vector<uint8_t> out;
  auto put = [&out](uint64_t id, uint64_t v) {
    append_varint(out, id);
    append_varint(out, v);
  };
  put(kSettingQpackMaxTableCapacity, s.qpack_max_table_capacity);
  put(kSettingMaxFieldSectionSize, std::min(s.max_field_section_size, kVarintMax));
  put(kSettingQpackBlockedStreams, s.qpack_blocked_streams);
  if (s.enable_connect_protocol) put(kSettingEnableConnectProtocol, 1);
  if (s.h3_datagram) put(kSettingH3Datagram, 1);
  if (s.webtransport) {
    put(kSettingWtEnableDraft02, 1);
    put(kSettingWtMaxSessionsDraft07, std::min(s.wt_max_sessions, kVarintMax));
    put(kSettingWtDraft13, 1);
    put(kSettingWtDraft15, 1);
  }
  // GREASE (RFC 9114 §7.2.4.1): a reserved identifier the peer must ignore.
  put(0x1f * (grease_seed % 1024) + 0x21, grease_seed & 0x3fff);
  return out;
}

std::vector<uint8_t> serialize_settings_frame(const Settings& s, uint64_t grease_seed) {
  std::vector<uint8_t> out;
  append_frame(out, kFrameSettings, serialize_settings_payload(s, grease_seed));
  return out;
}

}  // namespace wtmesh::h3
