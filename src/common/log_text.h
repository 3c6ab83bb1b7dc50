// Client-controlled text (authorities, targets, origins, SNI names, header values) made safe for a log
// line: a client must not be able to forge lines, hide text with terminal escapes, or fill the log
// with one huge field, and tokens in query strings must never reach the log.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>

#include "common/time.h"

namespace wtmesh {

// `s` with every byte outside printable ASCII (and the backslash) written as \xNN (\\ for a
// backslash), cut to `max` bytes of output and then marked "...(N bytes)" with the input's length.
std::string log_text(std::string_view s, size_t max = 256);

// A request target for the log: log_text() of it, with the value of every query parameter that
// carries a credential (`token`, `wtmesh_token`, `access_token`) replaced by "REDACTED".
std::string log_target(std::string_view target, size_t max = 512);

// A token bucket for log lines a peer can repeat at will (a refusal per REGISTER, per stream): `burst`
// lines at once, then one more every `interval`. Sans-I/O: time is a parameter.
class LogBudget {
 public:
  LogBudget(size_t burst, std::chrono::milliseconds interval) : burst_(burst), interval_(interval) {}
  // True when a line may be written at `now`; false counts it as suppressed.
  bool allow(SteadyTime now);
  // Lines suppressed since the previous call (0 if none), for a "(N similar lines suppressed)" note.
  uint64_t take_suppressed() { return std::exchange(suppressed_, 0); }
  // " (N similar lines suppressed)" for the lines suppressed since the previous call, or "".
  std::string suppressed_note();

 private:
  size_t burst_;
  std::chrono::milliseconds interval_;
  bool started_ = false;
  size_t tokens_ = 0;
  SteadyTime refilled_{};
  uint64_t suppressed_ = 0;
};

}  // namespace wtmesh
