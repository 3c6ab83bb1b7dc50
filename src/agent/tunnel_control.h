// The agent's end of the control stream (docs/protocol.md §3), sans-I/O: it queues the stream
// kind and REGISTER frames, decodes REGISTERED / REFUSED / PING / PONG from the edge (tunnel/control.h),
// answers PINGs, and runs the shared tunnel::Heartbeat: a PING every interval, a heartbeat timeout
// after three silent ones. The caller moves pending_output() onto the WebTransport stream and reports
// what was taken.
#pragma once

#include <chrono>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "common/time.h"
#include "tunnel/control.h"
#include "tunnel/heartbeat.h"
#include "tunnel/wire.h"

namespace wtmesh::agent {

struct TunnelRegistration {
  uint32_t id = 0;
  std::string hostname;  // NAME.DOMAIN
  std::string type = "http";
  uint16_t remote_port = 0;       // tcp, udp: REGISTER options (protocol.md §3.1, §3.2)
  bool private_only = false;      // tcp, udp
  tunnel::VisitorPolicy visitor;  // http: visitor auth (protocol.md §3.4)
};

struct ControlEvent {
  enum class Kind { kRegistered, kRefused, kPing, kPong, kRenewed };
  Kind kind = Kind::kPong;
  uint32_t id = 0;
  std::string hostname;
  std::string url;      // kRegistered
  std::string code;     // kRefused: not_covered, taken, invalid, limit, duplicate_id, ...
  std::string message;  // kRefused: a sentence; kRenewed: the edge's reason when it refused
  uint64_t seq = 0;     // kPing / kPong / kRenewed
  uint64_t expires = 0;  // kRenewed: the session's new expiry (Unix seconds), 0 when refused
};

struct ControlOptions {
  std::chrono::milliseconds ping_interval = tunnel::Heartbeat::kDefaultInterval;
  int missed_intervals = tunnel::Heartbeat::kDefaultMissedIntervals;  // silence this long = timeout
  size_t max_output = 256 * 1024;  // bytes queued for a peer that does not read: then an error
  // Telemetry reports on datagram flow 0 (protocol.md §2.2), sent beside the control stream: one when
  // the session is ready, then every telemetry_interval (0: none) while the session is busy
  // (EdgeSession::busy()) or was since the last report, and at the tick after; an idle session
  // sends one every telemetry_idle_interval (its counters change only by heartbeats then).
  std::chrono::milliseconds telemetry_interval{5000};
  std::chrono::milliseconds telemetry_idle_interval{60000};
  // A session is told idle (EdgeSession::Callbacks::on_busy(false): the agent's slow keep-alive) at
  // the first heartbeat tick once nothing was under way for this long, so a NAT that rebinds in
  // the pauses of an active tunnel is still repaired within a second (docs/protocol.md §3).
  std::chrono::milliseconds idle_after{30000};
  std::string agent_version;  // in the reports
  SteadyTime started_at{};    // the agent's start, for the reports' uptime
};

class ControlChannel {
 public:
  ControlChannel(ControlOptions options, SteadyTime now);

  // Queues the stream kind (0x00) and one REGISTER per tunnel. Call once, first.
  void start(const std::vector<TunnelRegistration>& tunnels);
  void send_register(const TunnelRegistration& tunnel);
  void send_unregister(uint32_t id);
  // RENEW (§3.3) with a fresh session token; returns its seq.
  uint64_t send_renew(std::string token);

  // Bytes received on the control stream. Complete frames become `events` (PINGs are answered
  // here). False on a protocol violation; error() says which.
  bool on_data(std::span<const uint8_t> data, SteadyTime now, std::vector<ControlEvent>& events);

  // Sends a PING when one is due. False when the edge has been silent for missed_intervals.
  bool on_tick(SteadyTime now);
  // When on_tick must next run.
  SteadyTime next_deadline() const { return heartbeat_.next_deadline(); }
  const tunnel::Heartbeat& heartbeat() const { return heartbeat_; }

  std::span<const uint8_t> pending_output() const { return out_; }
  void output_written(size_t n);
  // The queue hit max_output (the edge stopped reading): a protocol failure.
  bool failed() const { return !error_.empty(); }
  const std::string& error() const { return error_; }
  // The failure was a heartbeat timeout (close code 2) rather than a protocol error (code 1).
  bool timed_out() const { return timed_out_; }

 private:
  void queue(const tunnel::ControlMessage& message);
  bool handle(const tunnel::ControlFrame& frame, SteadyTime now, std::vector<ControlEvent>& events);

  ControlOptions options_;
  tunnel::ControlReader reader_;
  tunnel::Heartbeat heartbeat_;
  std::vector<uint8_t> out_;
  std::string error_;
  bool timed_out_ = false;
  uint64_t renew_seq_ = 0;
};

}  // namespace wtmesh::agent
