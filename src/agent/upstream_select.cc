#include "agent/upstream_select.h"

#include <spdlog/spdlog.h>

namespace wtmesh::agent {

UpstreamSelector::UpstreamSelector(boost::asio::io_context& io, UpstreamTarget target, UpstreamPool& pool,
                                   H2UpstreamClient& h2)
    : io_(io), target_(std::move(target)), pool_(pool), h2_(h2) {
  target_.alpn = {"h2", "http/1.1"};
}

UpstreamSelector::~UpstreamSelector() = default;

void UpstreamSelector::when_known(std::function<void()> ready) {
  if (mode_ != Mode::kUnknown) return ready();
  waiting_.push_back(std::move(ready));
  if (probing_) return;
  probing_ = true;
  UpstreamConnection::open(io_, target_,
                           [this, alive = std::weak_ptr<int>(alive_)](
                               std::shared_ptr<UpstreamConnection> conn, const std::string& error, bool) {
                             if (alive.expired()) {
                               if (conn) conn->close();
                               return;
                             }
                             probing_ = false;
                             if (conn) {
                               mode_ = conn->alpn() == "h2" ? Mode::kH2 : Mode::kHttp1;
                               spdlog::info("tunnel: the TLS upstream {} chose {}", h2_.name(),
                                            mode_ == Mode::kH2 ? "HTTP/2 (ALPN h2)" : "HTTP/1.1");
                               if (mode_ == Mode::kH2) {
                                 h2_.adopt(std::move(conn));
                               } else {
                                 pool_.put(std::move(conn));
                               }
                             } else {
                               spdlog::debug("tunnel: ALPN probe of {} failed: {}", h2_.name(), error);
                             }
                             auto waiting = std::move(waiting_);
                             waiting_.clear();
                             for (auto& w : waiting) w();
                           });
}

SelectingDriver::SelectingDriver(boost::asio::io_context& io, UpstreamSelector& selector,
                                 wt::Session& session, wt::StreamId id, tunnel::RequestHead head, DoneFn done,
                                 ExchangeLimits limits)
    : io_(io),
      selector_(selector),
      session_(&session),
      id_(id),
      head_(std::move(head)),
      done_(std::move(done)),
      limits_(limits) {}

void SelectingDriver::start(std::span<const uint8_t> early_body, bool fin) {
  held_.assign(early_body.begin(), early_body.end());
  fin_ = fin;
  selector_.when_known([weak = weak_from_this()] {
    if (auto self = weak.lock()) self->go();
  });
}

void SelectingDriver::go() {
  if (real_ || !session_) return;
  if (selector_.mode() == UpstreamSelector::Mode::kH2) {
    real_ = std::make_shared<H2StreamDriver>(selector_.h2(), *session_, id_, std::move(head_),
                                             std::move(done_), limits_);
  } else {
    real_ = std::make_shared<AsioUpstreamDriver>(io_, *session_, id_, selector_.pool(), std::move(head_),
                                                 std::move(done_), limits_);
  }
  auto held = std::move(held_);
  held_.clear();
  real_->start(held, fin_);
}

void SelectingDriver::on_body(std::span<const uint8_t> data, bool fin) {
  if (real_) return real_->on_body(data, fin);
  held_.insert(held_.end(), data.begin(), data.end());
  fin_ = fin_ || fin;
}

void SelectingDriver::on_writable() {
  if (real_) real_->on_writable();
}

void SelectingDriver::on_reset(std::optional<uint32_t> code) {
  go();
  if (real_) real_->on_reset(code);
}

void SelectingDriver::on_stop_sending(std::optional<uint32_t> code) {
  go();
  if (real_) real_->on_stop_sending(code);
}

void SelectingDriver::on_stream_closed() {
  go();
  if (real_) real_->on_stream_closed();
}

void SelectingDriver::on_session_gone() {
  if (real_) return real_->on_session_gone();
  session_ = nullptr;  // nothing was started: nothing to tell
}

}  // namespace wtmesh::agent
