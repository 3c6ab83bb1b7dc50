// Fuzzes the telemetry report decoder (docs/protocol.md §2.2): any bytes either decode or are
// refused, and a report it accepts encodes to bytes that decode to the same report.
#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "tunnel/telemetry.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace wtmesh::tunnel;
  TelemetryReport report;
  if (decode_telemetry(std::span<const uint8_t>(data, size), report) != TelemetryError::kNone) return 0;
  if (report.version && report.version->size() > kMaxTelemetryVersionText) __builtin_trap();
  const std::vector<uint8_t> wire = encode_telemetry(report);
  TelemetryReport again;
  if (decode_telemetry(wire, again) != TelemetryError::kNone || !(again == report)) __builtin_trap();
  return 0;
}
