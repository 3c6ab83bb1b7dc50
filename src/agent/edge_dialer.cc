#include "agent/edge_dialer.h"

#include <spdlog/spdlog.h>

#include "agent/wt_client.h"

namespace wtmesh::agent {

EdgeDialer::EdgeDialer(boost::asio::io_context& io, DialOptions options, Done done)
    : io_(io), options_(std::move(options)), done_(std::move(done)), race_timer_(io) {}

EdgeDialer::~EdgeDialer() {
  race_timer_.cancel();
  if (quic_) quic_->close("dial abandoned");
  if (h2_) h2_->close("dial abandoned");
}

std::unique_ptr<WtClient> EdgeDialer::dial(EdgeTransport t, std::string* error) {
  auto c = std::make_unique<WtClient>(io_, options_.tls, options_.transport);
  c->use_transport(t);
  if (t == EdgeTransport::kQuic && options_.resumption) c->use_resumption(options_.resumption);
  c->set_on_change([this, alive = std::weak_ptr<int>(alive_)] {
    if (!alive.expired()) on_change();
  });
  // HTTP/2 resolves the name itself (TCP tries every address in turn) unless an address is avoided.
  const bool fixed = t == EdgeTransport::kQuic || options_.avoid.has_value();
  if (!c->dial(options_.edge, error, fixed ? &remote_ : nullptr)) return nullptr;
  return c;
}

bool EdgeDialer::start(std::string* error) {
  boost::system::error_code ec;
  boost::asio::ip::udp::resolver resolver(io_);
  const auto results = resolver.resolve(options_.edge.host, std::to_string(options_.edge.port), ec);
  if (ec || results.empty()) {
    if (error) *error = "cannot resolve " + options_.edge.host + ": " + ec.message();
    return false;
  }
  remote_ = results.begin()->endpoint();
  if (options_.avoid) {
    for (const auto& r : results) {
      if (r.endpoint().address() == *options_.avoid) continue;
      remote_ = r.endpoint();
      break;
    }
  }
  if (options_.choice == EdgeTransport::kH2) {
    h2_ = dial(EdgeTransport::kH2, error);
    return h2_ != nullptr;
  }
  std::string quic_error;
  quic_ = dial(EdgeTransport::kQuic, &quic_error);
  if (options_.choice == EdgeTransport::kQuic) {
    if (!quic_ && error) *error = quic_error;
    return quic_ != nullptr;
  }
  if (!quic_) {
    quic_story_ = "QUIC could not start: " + quic_error;
    raced_ = true;
    h2_ = dial(EdgeTransport::kH2, error);
    if (!h2_ && error) *error = quic_story_ + "; HTTP/2: " + *error;
    return h2_ != nullptr;
  }
  race_timer_.expires_after(options_.h2_after);
  race_timer_.async_wait([this, alive = std::weak_ptr<int>(alive_)](const boost::system::error_code& ec) {
    if (ec || alive.expired() || finished_ || raced_) return;
    quic_story_ = "no QUIC handshake within " + std::to_string(options_.h2_after.count()) + " ms";
    start_h2();
  });
  return true;
}

void EdgeDialer::start_h2() {
  raced_ = true;
  race_timer_.cancel();
  h2_ = dial(EdgeTransport::kH2, &h2_error_);
  spdlog::debug("agent: {}: dialling WebTransport over HTTP/2 beside it{}", quic_story_,
                h2_ ? "" : " failed: " + h2_error_);
  if (!h2_) on_change();  // QUIC may be all that is left, or nothing is
}

void EdgeDialer::on_change() {
  if (finished_) return;
  // QUIC first: on a tie it wins. A QUIC client resuming with 0-RTT is ready before its handshake
  // (its owner watches that the handshake follows: TunnelAgent::watch_early_handshake).
  if (quic_ && quic_->ready_for_requests()) return finish(std::move(quic_), "");
  if (h2_ && h2_->handshake_completed()) return finish(std::move(h2_), "");
  const bool quic_failed = quic_ && quic_->closed();
  const bool h2_failed = h2_ && h2_->closed();
  if (h2_failed && h2_error_.empty()) h2_error_ = h2_->close_reason();
  switch (options_.choice) {
    case EdgeTransport::kQuic:
      if (quic_failed) finish(nullptr, quic_->close_reason());
      return;
    case EdgeTransport::kH2:
      if (h2_failed) finish(nullptr, h2_error_);
      return;
    case EdgeTransport::kAuto:
      break;
  }
  if (quic_failed && !quic_failure_told_) {
    quic_failure_told_ = true;
    quic_story_ = "QUIC failed: " + quic_->close_reason();
    if (!raced_) return start_h2();
  }
  const bool quic_out = !quic_ || quic_failed;
  const bool h2_out = raced_ && (!h2_ || h2_failed);
  if (quic_out && h2_out) finish(nullptr, quic_story_ + "; HTTP/2: " + h2_error_);
}

void EdgeDialer::finish(std::unique_ptr<WtClient> winner, std::string error) {
  finished_ = true;
  race_timer_.cancel();
  if (quic_) quic_->close("the edge answered over HTTP/2 first");
  if (h2_) h2_->close("the edge answered over QUIC first");
  quic_.reset();
  h2_.reset();
  Done done = std::move(done_);
  done_ = nullptr;
  if (done) done(std::move(winner), error);  // may destroy this dialer: nothing after it
}

}  // namespace wtmesh::agent
