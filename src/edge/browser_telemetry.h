// Telemetry from browsers at /connect/NAME (docs/protocol.md §8, "Telemetry"): the demo page sends a report now
// and then, with the encoding of an agent's (§2.2, tunnel/telemetry.h), each on a unidirectional
// stream of its own (its datagrams are UDP packets to NAME, so they cannot carry it). The edge keeps
// each live session's latest report and shows it in /metrics beside the agents' (the `agent` label
// "browser/SUBJECT#N"), dropped when the session ends.
//
// - BrowserTelemetry: the board of live browser sessions' reports, shared by the sessions and read at
//   scrape time. A board of its own (not the tunnel service's) because browser sessions are not agent
//   sessions: they register nothing and live on the public connections.
// - TelemetryStreams: one session's report streams while they arrive. Bounded: at most kMaxStreams at
//   once (more are refused with STOP_SENDING), a report over tunnel::kMaxTelemetrySize bytes is
//   refused and counted invalid; a report is decoded at its FIN.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "common/time.h"
#include "edge/metrics.h"
#include "tunnel/telemetry.h"

namespace wtmesh::edge {

class BrowserTelemetry {
 public:
  // `metrics` (may be null) counts each report accepted or invalid, like an agent's.
  explicit BrowserTelemetry(EdgeMetrics* metrics) : metrics_(metrics) {}

  // A session that may report; its key for the calls below.
  uint64_t add_session(const std::string& subject);
  void remove_session(uint64_t key);
  void on_report(uint64_t key, tunnel::TelemetryReport report, SteadyTime now);
  void on_invalid();

  // The live sessions that reported, in the order they opened.
  std::vector<AgentTelemetry> snapshot(SteadyTime now) const;
  size_t session_count() const { return sessions_.size(); }
  uint64_t accepted() const { return accepted_; }
  uint64_t invalid() const { return invalid_; }

 private:
  struct Entry {
    std::string label;
    std::optional<tunnel::TelemetryReport> report;
    SteadyTime at{};
  };
  EdgeMetrics* metrics_;
  std::map<uint64_t, Entry> sessions_;
  uint64_t last_ = 0;
  uint64_t accepted_ = 0, invalid_ = 0;
};

class TelemetryStreams {
 public:
  static constexpr size_t kMaxStreams = 2;

  enum class Result {
    kMore,     // keep reading (data consumed)
    kReport,   // a whole report decoded into *report; the stream is done
    kRefused,  // too large or malformed: STOP_SENDING it (counted invalid); the stream is done
  };
  // A new uni stream: false when kMaxStreams are already arriving (refuse it).
  bool open(uint64_t id);
  bool has(uint64_t id) const { return streams_.contains(id); }
  Result on_data(uint64_t id, std::span<const uint8_t> data, bool fin, tunnel::TelemetryReport* report,
                 std::string* error);
  void forget(uint64_t id) { streams_.erase(id); }
  size_t count() const { return streams_.size(); }

 private:
  std::map<uint64_t, std::vector<uint8_t>> streams_;
};

}  // namespace wtmesh::edge
