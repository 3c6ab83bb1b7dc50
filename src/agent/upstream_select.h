// TLS upstreams whose protocol ALPN picks (`--upstream-tls` without `--upstream`): the agent learns
// once per tunnel what the service speaks, then relays every request the chosen way.
//
//  - UpstreamSelector (one per such tunnel): the first request opens a TLS connection offering
//    `h2, http/1.1`; the server's choice fixes the tunnel's mode, and the connection is not wasted:
//    an h2 one joins the H2UpstreamClient (adopt), an http/1.1 one the UpstreamPool. Later
//    connections offer only the chosen protocol. If the probe fails (refused, certificate), the mode
//    stays unknown and the waiting requests take the HTTP/1.1 path, which reports the failure as the
//    usual 502; the next request probes again.
//  - SelectingDriver: an UpstreamDriver that holds a request's stream-side calls (body bytes stay
//    unconsumed, so the tunnel stream's flow control bounds them) until the mode is known, then creates
//    the real driver (AsioUpstreamDriver or H2StreamDriver) and hands it what it held. A reset or stop
//    before that creates the HTTP/1.1 driver at once and passes the call on, so every ending is handled
//    by the one exchange core.
#pragma once

#include <boost/asio/io_context.hpp>
#include <functional>
#include <memory>
#include <optional>
#include <vector>

#include "agent/h2_upstream_driver.h"
#include "agent/upstream_driver.h"
#include "agent/upstream_pool.h"

namespace wtmesh::agent {

class UpstreamSelector {
 public:
  enum class Mode { kUnknown, kHttp1, kH2 };

  // `target`: the TLS target; `pool` and `h2` drive each mode (their targets offer one protocol each).
  UpstreamSelector(boost::asio::io_context& io, UpstreamTarget target, UpstreamPool& pool,
                   H2UpstreamClient& h2);
  ~UpstreamSelector();
  UpstreamSelector(const UpstreamSelector&) = delete;
  UpstreamSelector& operator=(const UpstreamSelector&) = delete;

  Mode mode() const { return mode_; }
  // `ready` runs once the probe ended (inline when the mode is known already).
  void when_known(std::function<void()> ready);
  UpstreamPool& pool() { return pool_; }
  H2UpstreamClient& h2() { return h2_; }

 private:
  boost::asio::io_context& io_;
  UpstreamTarget target_;
  UpstreamPool& pool_;
  H2UpstreamClient& h2_;
  Mode mode_ = Mode::kUnknown;
  bool probing_ = false;
  std::vector<std::function<void()>> waiting_;
  std::shared_ptr<int> alive_ = std::make_shared<int>(0);
};

class SelectingDriver final : public UpstreamDriver, public std::enable_shared_from_this<SelectingDriver> {
 public:
  using DoneFn = UpstreamExchange::DoneFn;

  SelectingDriver(boost::asio::io_context& io, UpstreamSelector& selector, wt::Session& session,
                  wt::StreamId id, tunnel::RequestHead head, DoneFn done, ExchangeLimits limits);

  void start(std::span<const uint8_t> early_body, bool fin) override;
  void on_body(std::span<const uint8_t> data, bool fin) override;
  void on_writable() override;
  void on_reset(std::optional<uint32_t> code) override;
  void on_stop_sending(std::optional<uint32_t> code) override;
  void on_stream_closed() override;
  void on_session_gone() override;
  bool finished() const override { return real_ && real_->finished(); }
  wt::StreamId stream_id() const override { return id_; }

 private:
  void go();

  boost::asio::io_context& io_;
  UpstreamSelector& selector_;
  wt::Session* session_;
  wt::StreamId id_;
  tunnel::RequestHead head_;
  DoneFn done_;
  ExchangeLimits limits_;
  std::vector<uint8_t> held_;
  bool fin_ = false;
  std::shared_ptr<UpstreamDriver> real_;
};

}  // namespace wtmesh::agent
