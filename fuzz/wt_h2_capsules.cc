// libFuzzer target for WebTransport over HTTP/2 (wt/h2_capsules.h, wt/h2_session.h): arbitrary bytes
// as the DATA of a CONNECT stream, cut into fuzzer-chosen pieces.
//  1. The capsule parser: memory held stays under its bound, and whatever parsed survives a round trip
//     (serialize, parse again: the same capsules, and the same stream data per stream).
//  2. A server H2Session fed the same bytes, with a handler that consumes, echoes and resets: the
//     output buffer stays under its cap, and once the session is over it holds no stream records.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <span>
#include <string>
#include <variant>
#include <vector>

#include "wt/h2_capsules.h"
#include "wt/h2_session.h"

namespace {

using namespace wtmesh::wt;

struct Event {
  int kind = 0;  // 0 capsule, 1 stream capsule, 2 stream data
  Capsule capsule;
  H2StreamCapsule stream_capsule;
  StreamId id = 0;
  std::vector<uint8_t> data;
  bool fin = false;
  bool operator==(const Event&) const = default;
};

// Records events; consecutive data pieces of one stream are merged (capsule boundaries inside one
// stream's data are not part of what the parser promises to keep).
struct Collector : H2CapsuleVisitor {
  std::vector<Event> events;
  bool on_capsule(Capsule& c) override {
    events.push_back(Event{0, c, {}, 0, {}, false});
    return true;
  }
  bool on_stream_capsule(const H2StreamCapsule& c) override {
    events.push_back(Event{1, {}, c, 0, {}, false});
    return true;
  }
  bool on_stream_data(StreamId id, std::span<const uint8_t> data, bool fin) override {
    if (!events.empty() && events.back().kind == 2 && events.back().id == id && !events.back().fin) {
      events.back().data.insert(events.back().data.end(), data.begin(), data.end());
      events.back().fin = fin;
    } else {
      events.push_back(Event{2, {}, {}, id, std::vector<uint8_t>(data.begin(), data.end()), fin});
    }
    return true;
  }
};

struct Handler : SessionHandler {
  Session* s = nullptr;
  void on_attached(Session& session) override { s = &session; }
  void on_incoming_stream(StreamId id, bool bidi) override {
    if (bidi && id % 3 == 0) s->stop_sending(id, 1);
  }
  void on_stream_data(StreamId id, std::span<const uint8_t> data, bool fin) override {
    s->consume(id, data.size());
    s->write(id, data, fin);  // echo (ignored on streams we cannot send on)
    if (data.size() > 100) s->reset_stream(id, 2);
  }
  void on_stream_reset(StreamId, std::optional<uint32_t>) override {}
  void on_datagram(std::span<const uint8_t> payload) override { s->send_datagram(payload); }
  void on_closed(uint32_t, std::string_view) override {}
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  H2CapsuleLimits limits;
  limits.max_datagram = 2048;
  limits.max_stream_capsule = 1 << 20;
  limits.fin_convention = (data[0] & 0x80) != 0 ? WtStreamFin::kDraft14 : WtStreamFin::kDraft15;
  const size_t step = 1 + data[0] % 64;
  const std::span<const uint8_t> input(data + 1, size - 1);

  H2CapsuleParser parser(limits);
  Collector got;
  for (std::span<const uint8_t> rest = input; !rest.empty();) {
    const size_t n = rest.size() < step ? rest.size() : step;
    if (parser.feed(rest.first(n), got) != CapsuleError::kNone) break;
    if (parser.buffered_bytes() > 16 + 4 + kMaxCloseMessage + 2048) std::abort();
    rest = rest.subspan(n);
  }
  parser.finish();

  std::vector<uint8_t> wire;
  for (const Event& e : got.events) {
    if (e.kind == 0) serialize_capsule(e.capsule, wire);
    if (e.kind == 1) serialize_h2_capsule(e.stream_capsule, wire);
    if (e.kind == 2) append_wt_stream(wire, e.id, e.data, e.fin, limits.fin_convention);
  }
  H2CapsuleParser again(limits);
  Collector got2;
  if (again.feed(wire, got2) != CapsuleError::kNone || again.finish() != CapsuleError::kNone ||
      got2.events != got.events) {
    std::abort();
  }

  H2SessionConfig config;
  config.local.initial_max_streams_bidi = 8;
  config.local.initial_max_streams_uni = 8;
  config.local.initial_max_data = 4096;
  config.local.initial_max_stream_data_bidi_remote = 1024;
  config.peer = config.local;
  config.max_output_bytes = 8192;
  config.control_reserve = 1024;
  config.fin_convention = limits.fin_convention;
  Handler handler;
  H2Session session(Role::kServer, config, SessionInfo{}, &handler);
  session.start(ConnectResponse{200, {}});
  for (std::span<const uint8_t> rest = input; !rest.empty();) {
    const size_t n = rest.size() < step ? rest.size() : step;
    session.receive(rest.first(n), false);
    if (session.output_size() > config.max_output_bytes) std::abort();
    session.consume_output(session.output().size() / 2);
    rest = rest.subspan(n);
  }
  session.receive({}, true);
  if (session.state() != H2Session::State::kClosed || session.stream_records() != 0) std::abort();
  return 0;
}
