// `wtmesh doctor`: checks an edge end to end with our own client against its /echo service and
// reports timings — QUIC+TLS handshake, WebTransport session set-up, bidi and uni stream round
// trips, datagram round trip, clean close.
#pragma once

#include <chrono>
#include <filesystem>
#include <optional>
#include <ostream>
#include <string>

#include "agent/edge_url.h"

namespace wtmesh::agent {

struct DoctorOptions {
  std::string edge_url;                         // https://HOST:PORT
  std::optional<std::filesystem::path> ca_file;  // trust only this CA; else the system store
  std::optional<std::string> pin_sha256;         // optional leaf pin (hex)
  std::string path = "/echo";
  int rounds = 5;
  std::chrono::milliseconds timeout{10000};  // per step
  // quic, h2 (WebTransport over HTTP/2 on TCP + TLS) or auto: QUIC, and h2 when the QUIC handshake has
  // not completed within h2_fallback_after.
  EdgeTransport transport = EdgeTransport::kAuto;
  std::chrono::milliseconds h2_fallback_after{2000};
};

struct DoctorReport {
  bool ok = false;
  double handshake_ms = 0;
  double session_ms = 0;
  double bidi_rtt_ms = 0;      // median over rounds
  double uni_rtt_ms = 0;
  double datagram_rtt_ms = 0;  // median over echoed datagrams
  int datagrams_echoed = 0;
  EdgeTransport transport = EdgeTransport::kQuic;  // what the checks ran over
  std::string failure;  // what failed, as a sentence
};

// Runs the checks, printing one line per step to `out`.
DoctorReport run_doctor(const DoctorOptions& options, std::ostream& out);

}  // namespace wtmesh::agent
