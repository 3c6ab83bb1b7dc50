#include "tunnel/telemetry.h"

#include <algorithm>

#include "common/varint.h"

namespace wtmesh::tunnel {
namespace {

bool printable(uint8_t c) { return c >= 0x20 && c <= 0x7e; }

void append_number(std::vector<uint8_t>& out, TelemetryKey key, const std::optional<uint64_t>& v) {
  if (!v) return;
  const uint64_t value = std::min(*v, kVarintMax);
  append_varint(out, static_cast<uint64_t>(key));
  append_varint(out, varint_size(value));
  append_varint(out, value);
}

// The value of a numeric entry: exactly one varint.
bool read_number(std::span<const uint8_t> value, std::optional<uint64_t>& out) {
  const auto v = read_varint(value);
  if (!v || v->length != value.size() || out) return false;  // short, trailing bytes, or repeated
  out = v->value;
  return true;
}

}  // namespace

const char* to_string(TelemetryError e) {
  switch (e) {
    case TelemetryError::kNone:
      return "ok";
    case TelemetryError::kUnsupportedVersion:
      return "unsupported telemetry version";
    case TelemetryError::kTooLarge:
      return "telemetry report too large";
    case TelemetryError::kMalformed:
      return "malformed telemetry report";
  }
  return "?";
}

std::vector<uint8_t> encode_telemetry(const TelemetryReport& report) {
  std::vector<uint8_t> out;
  append_varint(out, kTelemetryVersion);
  append_number(out, TelemetryKey::kRttMicros, report.rtt_us);
  append_number(out, TelemetryKey::kBytesSent, report.bytes_sent);
  append_number(out, TelemetryKey::kBytesReceived, report.bytes_received);
  append_number(out, TelemetryKey::kOpenStreams, report.open_streams);
  append_number(out, TelemetryKey::kDatagramsDropped, report.datagrams_dropped);
  append_number(out, TelemetryKey::kUptimeSeconds, report.uptime_s);
  if (report.version) {
    std::string text = report.version->substr(0, kMaxTelemetryVersionText);
    for (char& c : text) {
      if (!printable(static_cast<uint8_t>(c))) c = '?';
    }
    append_varint(out, static_cast<uint64_t>(TelemetryKey::kAgentVersion));
    append_varint(out, text.size());
    out.insert(out.end(), text.begin(), text.end());
  }
  return out;
}

std::optional<std::vector<uint8_t>> encode_telemetry_datagram(const TelemetryReport& report,
                                                              size_t max_datagram_size) {
  const std::vector<uint8_t> body = encode_telemetry(report);
  if (varint_size(kTelemetryFlowId) + body.size() > max_datagram_size) return std::nullopt;
  std::vector<uint8_t> out;
  out.reserve(varint_size(kTelemetryFlowId) + body.size());
  append_varint(out, kTelemetryFlowId);
  append_bytes(out, body);
  return out;
}

TelemetryError decode_telemetry(std::span<const uint8_t> in, TelemetryReport& out) {
  out = TelemetryReport{};
  if (in.size() > kMaxTelemetrySize) return TelemetryError::kTooLarge;
  const auto version = read_varint(in);
  if (!version) return TelemetryError::kMalformed;
  if (version->value != kTelemetryVersion) return TelemetryError::kUnsupportedVersion;
  in = in.subspan(version->length);
  size_t entries = 0;
  while (!in.empty()) {
    if (++entries > kMaxTelemetryEntries) return TelemetryError::kTooLarge;
    const auto key = read_varint(in);
    if (!key) return TelemetryError::kMalformed;
    in = in.subspan(key->length);
    const auto length = read_varint(in);
    if (!length) return TelemetryError::kMalformed;
    in = in.subspan(length->length);
    if (length->value > in.size()) return TelemetryError::kMalformed;
    const auto value = in.first(static_cast<size_t>(length->value));
    in = in.subspan(value.size());
    bool ok = true;
    switch (static_cast<TelemetryKey>(key->value)) {
      case TelemetryKey::kRttMicros:
        ok = read_number(value, out.rtt_us);
        break;
      case TelemetryKey::kBytesSent:
        ok = read_number(value, out.bytes_sent);
        break;
      case TelemetryKey::kBytesReceived:
        ok = read_number(value, out.bytes_received);
        break;
      case TelemetryKey::kOpenStreams:
        ok = read_number(value, out.open_streams);
        break;
      case TelemetryKey::kDatagramsDropped:
        ok = read_number(value, out.datagrams_dropped);
        break;
      case TelemetryKey::kUptimeSeconds:
        ok = read_number(value, out.uptime_s);
        break;
      case TelemetryKey::kAgentVersion:
        ok = !out.version && value.size() <= kMaxTelemetryVersionText &&
             std::all_of(value.begin(), value.end(), printable);
        if (ok) out.version = std::string(value.begin(), value.end());
        break;
      default:
        break;  // unknown key: skipped
    }
    if (!ok) return TelemetryError::kMalformed;
  }
  return TelemetryError::kNone;
}

}  // namespace wtmesh::tunnel
