#include "agent/doctor.h"

#include <fmt/format.h>

#include <algorithm>
#include <boost/asio/io_context.hpp>
#include <functional>
#include <map>
#include <vector>

#include "agent/wt_client.h"
#include "quic/tls_context.h"

namespace wtmesh::agent {

namespace {

using Clock = std::chrono::steady_clock;

double ms_since(Clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
}

double median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

// Records what the echo service sends back.
class Recorder final : public wt::SessionHandler {
 public:
  void on_attached(wt::Session& s) override { session = &s; }
  void on_ready() override { ready = true; }
  void on_refused(const wt::ConnectResponse& r) override { refused_status = r.status; }
  void on_incoming_stream(wt::StreamId id, bool /*bidi*/) override { incoming.push_back(id); }
  void on_stream_data(wt::StreamId id, std::span<const uint8_t> data, bool fin) override {
    auto& r = received[id];
    r.insert(r.end(), data.begin(), data.end());
    if (fin) fins[id] = true;
    session->consume(id, data.size());
  }
  void on_stream_reset(wt::StreamId id, std::optional<uint32_t>) override { resets[id] = true; }
  void on_datagram(std::span<const uint8_t> payload) override {
    datagrams.emplace_back(payload.begin(), payload.end());
  }
  void on_closed(uint32_t c, std::string_view r) override {
    closed = true;
    code = c;
    reason = std::string(r);
  }

  wt::Session* session = nullptr;
  bool ready = false;
  bool closed = false;
  uint32_t code = 0;
  int refused_status = 0;
  std::string reason;
  std::vector<wt::StreamId> incoming;
  std::map<wt::StreamId, std::vector<uint8_t>> received;
  std::map<wt::StreamId, bool> fins;
  std::map<wt::StreamId, bool> resets;
  std::vector<std::vector<uint8_t>> datagrams;
};

}  // namespace

DoctorReport run_doctor(const DoctorOptions& options, std::ostream& out) {
  DoctorReport report;
  auto fail = [&](std::string why) {
    report.failure = std::move(why);
    out << "  FAILED: " << report.failure << "\n";
    return report;
  };
  std::string error;
  auto url = parse_edge_url(options.edge_url, &error);
  if (!url) return fail(error);
  if (!url->path.empty() && url->path != "/")
    return fail("give the edge URL without a path (the check uses " + options.path + ")");

  std::optional<quic::TlsClientContext> tls;
  try {
    tls.emplace(options.ca_file ? quic::TlsClientContext::with_ca_file(*options.ca_file)
                                : quic::TlsClientContext::with_system_trust());
    if (options.pin_sha256) tls->pin_sha256(*options.pin_sha256);
  } catch (const std::exception& e) {
    return fail(e.what());
  }

  boost::asio::io_context io;
  Recorder rec;  // declared before the client: it must outlive the session it observes
  auto trust = std::make_shared<const quic::TlsClientContext>(std::move(*tls));
  std::unique_ptr<WtClient> client;
  auto make_client = [&](EdgeTransport t) {
    client = std::make_unique<WtClient>(io, trust);
    client->use_transport(t);
    report.transport = t;
  };
  // Runs the loop until `done` or the step's timeout (or the connection dies).
  auto run_until = [&](const std::function<bool()>& done,
                       std::chrono::milliseconds limit = std::chrono::milliseconds(0)) {
    const auto deadline = Clock::now() + (limit.count() > 0 ? limit : options.timeout);
    for (;;) {
      if (done()) return true;
      if (client->closed() || Clock::now() >= deadline) return false;
      // One handler at a time, so a result is seen the moment it arrives (timings stay honest).
      io.run_one_for(std::chrono::milliseconds(5));
      if (io.stopped()) io.restart();
    }
  };

  out << "wtmesh doctor: " << options.edge_url << options.path << " (transport "
      << to_string(options.transport) << ")\n";
  auto t0 = Clock::now();
  make_client(options.transport == EdgeTransport::kH2 ? EdgeTransport::kH2 : EdgeTransport::kQuic);
  if (!client->dial(*url, &error)) return fail(error);
  const bool quick = options.transport == EdgeTransport::kAuto;
  if (!run_until([&] { return client->handshake_completed(); },
                 quick ? options.h2_fallback_after : std::chrono::milliseconds(0))) {
    const std::string why =
        client->close_reason().empty() ? std::string("timed out") : client->close_reason();
    if (!quick) {
      return fail(std::string(options.transport == EdgeTransport::kH2 ? "TLS/HTTP/2" : "QUIC") +
                  " handshake did not complete: " + why);
    }
    out << "  quic          --  no handshake within " << options.h2_fallback_after.count() << " ms (" << why
        << "): trying HTTP/2 over TCP\n";
    client->close("falling back to HTTP/2");
    make_client(EdgeTransport::kH2);
    t0 = Clock::now();
    if (!client->dial(*url, &error)) return fail(error);
    if (!run_until([&] { return client->handshake_completed(); })) {
      return fail("TLS/HTTP/2 handshake did not complete: " +
                  (client->close_reason().empty() ? std::string("timed out") : client->close_reason()));
    }
  }
  report.handshake_ms = ms_since(t0);
  if (report.transport == EdgeTransport::kH2) {
    out << fmt::format("  handshake     ok  {:.2f} ms  (transport h2: TCP, {}, SETTINGS_WT_ENABLED)\n",
                       report.handshake_ms, client->tls_summary());
  } else {
    out << fmt::format("  handshake     ok  {:.2f} ms  (transport quic: QUIC v1, TLS 1.3, ALPN {})\n",
                       report.handshake_ms, client->connection()->negotiated_alpn());
  }

  const auto t1 = Clock::now();
  wt::Session* session = client->open_session(options.path, {}, &rec, &error);
  if (!session) return fail("cannot start a WebTransport session: " + error);
  if (!run_until([&] { return rec.ready || rec.closed; }) || !rec.ready) {
    std::string why = rec.closed ? rec.reason : std::string("timed out");
    if (rec.refused_status == 404)
      why += " (an edge serves " + options.path + " only when started with --echo)";
    return fail("WebTransport session refused: " + why);
  }
  report.session_ms = ms_since(t1);
  out << fmt::format("  session       ok  {:.2f} ms  (extended CONNECT {} -> {})\n", report.session_ms,
                     options.path, session->response().status);

  // Bidi streams: 1 KiB out and back, FIN included.
  std::vector<double> rtts;
  std::vector<uint8_t> payload(1024);
  for (size_t i = 0; i < payload.size(); ++i) payload[i] = static_cast<uint8_t>(i * 7 + 3);
  for (int r = 0; r < options.rounds; ++r) {
    const auto ts = Clock::now();
    auto id = session->open_bidi_stream();
    if (!id) return fail("could not open a bidirectional stream");
    if (session->write(*id, payload, true) != payload.size()) return fail("stream write was refused");
    if (!run_until([&] { return rec.fins[*id] || rec.resets[*id]; }) || rec.received[*id] != payload) {
      return fail("bidirectional stream echo did not come back intact");
    }
    rtts.push_back(ms_since(ts));
  }
  report.bidi_rtt_ms = median(rtts);
  out << fmt::format("  bidi stream   ok  rtt p50 {:.2f} ms  ({} rounds, 1 KiB + FIN)\n", report.bidi_rtt_ms,
                     options.rounds);

  // Uni stream: the echo comes back on a stream the server opens.
  {
    const auto ts = Clock::now();
    auto id = session->open_uni_stream();
    if (!id) return fail("could not open a unidirectional stream");
    session->write(*id, payload, true);
    const size_t before = rec.incoming.size();
    if (!run_until([&] { return rec.incoming.size() > before && rec.fins[rec.incoming.back()]; }) ||
        rec.received[rec.incoming.back()] != payload) {
      return fail("unidirectional stream echo did not come back intact");
    }
    report.uni_rtt_ms = ms_since(ts);
    out << fmt::format("  uni stream    ok  rtt {:.2f} ms  (answered on a server-opened stream)\n",
                       report.uni_rtt_ms);
  }

  // Datagrams are unreliable: each round waits a bounded time for its echo.
  rtts.clear();
  if (session->max_datagram_size() == 0) return fail("the edge did not enable datagrams");
  for (int r = 0; r < options.rounds; ++r) {
    std::vector<uint8_t> d(64, static_cast<uint8_t>(r));
    const size_t before = rec.datagrams.size();
    const auto ts = Clock::now();
    session->send_datagram(d);
    const auto deadline = Clock::now() + std::chrono::milliseconds(500);
    while (rec.datagrams.size() == before && Clock::now() < deadline && !client->closed()) {
      io.run_one_for(std::chrono::milliseconds(5));
      if (io.stopped()) io.restart();
    }
    if (rec.datagrams.size() > before && rec.datagrams.back() == d) rtts.push_back(ms_since(ts));
  }
  report.datagrams_echoed = static_cast<int>(rtts.size());
  if (rtts.empty()) return fail("no datagram echo came back");
  report.datagram_rtt_ms = median(rtts);
  out << fmt::format("  datagram      ok  rtt p50 {:.2f} ms  ({}/{} echoed)\n", report.datagram_rtt_ms,
                     report.datagrams_echoed, options.rounds);

  session->close(0, "wtmesh doctor done");
  // Let the close capsule reach the edge (every stream acked and finished) before the connection goes.
  const auto close_deadline = Clock::now() + std::chrono::seconds(1);
  run_until([&] {
    return rec.closed && (client->connection() == nullptr || client->connection()->stream_count() == 0 ||
                          Clock::now() >= close_deadline);
  });
  client->close("doctor done");
  io.run_for(std::chrono::milliseconds(20));
  out << "  close         ok\nall checks passed (transport " << to_string(report.transport) << ")\n";
  report.ok = true;
  return report;
}

}  // namespace wtmesh::agent
