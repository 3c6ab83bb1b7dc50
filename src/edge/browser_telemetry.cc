#include "edge/browser_telemetry.h"

namespace wtmesh::edge {

uint64_t BrowserTelemetry::add_session(const std::string& subject) {
  const uint64_t key = ++last_;
  sessions_[key].label = "browser/" + subject + "#" + std::to_string(key);
  return key;
}

void BrowserTelemetry::remove_session(uint64_t key) { sessions_.erase(key); }

void BrowserTelemetry::on_report(uint64_t key, tunnel::TelemetryReport report, SteadyTime now) {
  ++accepted_;
  if (metrics_ != nullptr) metrics_->on_telemetry(true);
  auto it = sessions_.find(key);
  if (it == sessions_.end()) return;
  it->second.report = std::move(report);
  it->second.at = now;
}

void BrowserTelemetry::on_invalid() {
  ++invalid_;
  if (metrics_ != nullptr) metrics_->on_telemetry(false);
}

std::vector<AgentTelemetry> BrowserTelemetry::snapshot(SteadyTime now) const {
  std::vector<AgentTelemetry> out;
  for (const auto& [key, e] : sessions_) {
    if (!e.report) continue;
    const std::chrono::duration<double> age = now - e.at;
    out.push_back({e.label, *e.report, age.count()});
  }
  return out;
}

bool TelemetryStreams::open(uint64_t id) {
  if (streams_.size() >= kMaxStreams) return false;
  streams_[id];
  return true;
}

TelemetryStreams::Result TelemetryStreams::on_data(uint64_t id, std::span<const uint8_t> data, bool fin,
                                                   tunnel::TelemetryReport* report, std::string* error) {
  auto it = streams_.find(id);
  if (it == streams_.end()) return Result::kMore;
  std::vector<uint8_t>& buf = it->second;
  if (buf.size() + data.size() > tunnel::kMaxTelemetrySize) {
    streams_.erase(it);
    *error = "a telemetry report over " + std::to_string(tunnel::kMaxTelemetrySize) + " bytes";
    return Result::kRefused;
  }
  buf.insert(buf.end(), data.begin(), data.end());
  if (!fin) return Result::kMore;
  const std::vector<uint8_t> whole = std::move(buf);
  streams_.erase(it);
  const tunnel::TelemetryError e = tunnel::decode_telemetry(whole, *report);
  if (e != tunnel::TelemetryError::kNone) {
    *error = std::string("a telemetry report that does not decode: ") + tunnel::to_string(e);
    return Result::kRefused;
  }
  return Result::kReport;
}

}  // namespace wtmesh::edge
