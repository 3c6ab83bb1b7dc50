// Telemetry reports (docs/protocol.md §2.2): what an agent tells the edge about its tunnel session
// every few seconds, on datagram flow 0. Sans-I/O and bounded: a report is one datagram, never
// fragmented; a report that does not fit the session's current max datagram size is dropped.
//
//   report = version:varint(1)  entry*
//   entry  = key:varint  length:varint  value:length bytes
//
// Numeric values are one varint filling the entry's value exactly; the version text is printable
// ASCII (0x20..0x7e).
// Unknown keys are skipped by their length, so later versions can add keys without a new version.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

namespace wtmesh::tunnel {

inline constexpr uint64_t kTelemetryFlowId = 0;  // §2.1: flow 0 is telemetry
inline constexpr uint64_t kTelemetryVersion = 1;
inline constexpr size_t kMaxTelemetrySize = 1024;   // a whole report (the decoder refuses more)
inline constexpr size_t kMaxTelemetryEntries = 32;  // known and unknown keys together
inline constexpr size_t kMaxTelemetryVersionText = 64;

enum class TelemetryKey : uint64_t {
  kRttMicros = 0x01,         // smoothed round-trip time to the edge, microseconds
  kBytesSent = 0x02,         // stream and datagram payload bytes the agent sent on the session
  kBytesReceived = 0x03,     // ... and received
  kOpenStreams = 0x04,       // streams the agent holds open now
  kDatagramsDropped = 0x05,  // datagrams the agent dropped on the session (too big, no room, unknown flow)
  kUptimeSeconds = 0x06,     // since the agent process started
  kAgentVersion = 0x07,      // text: the agent's version, e.g. "0.1.0"
};

struct TelemetryReport {
  std::optional<uint64_t> rtt_us;
  std::optional<uint64_t> bytes_sent;
  std::optional<uint64_t> bytes_received;
  std::optional<uint64_t> open_streams;
  std::optional<uint64_t> datagrams_dropped;
  std::optional<uint64_t> uptime_s;
  std::optional<std::string> version;  // at most kMaxTelemetryVersionText printable ASCII bytes

  bool operator==(const TelemetryReport&) const = default;
};

enum class TelemetryError {
  kNone,
  kUnsupportedVersion,  // a report version this edge does not read
  kTooLarge,            // over kMaxTelemetrySize bytes, or over kMaxTelemetryEntries entries
  kMalformed,           // truncated, a numeric value that is not exactly one varint, a repeated key,
                        // a version text that is too long or not printable ASCII
};
const char* to_string(TelemetryError e);

// The report's bytes (no flow id). Values over 2^62 - 1 are written as 2^62 - 1; a version text is
// cut to kMaxTelemetryVersionText bytes and other than printable ASCII bytes become '?'.
std::vector<uint8_t> encode_telemetry(const TelemetryReport& report);
// flow id 0 + the report, or nullopt when that is larger than `max_datagram_size` (the report is
// dropped, never split).
std::optional<std::vector<uint8_t>> encode_telemetry_datagram(const TelemetryReport& report,
                                                              size_t max_datagram_size);
// Decodes a report (the payload after the flow id). On an error `out` is left unspecified.
TelemetryError decode_telemetry(std::span<const uint8_t> in, TelemetryReport& out);

}  // namespace wtmesh::tunnel
