// TunnelAgent, moving to a better session without losing work: on HTTP/2 (auto), QUIC is dialled
// again every quic_probe_every; once its handshake completes, a new session opens over it and
// registers the same names, which the edge hands over from the HTTP/2 session (same agent instance
// and token subject: docs/protocol.md §3.5) in one step, so no request finds the name missing. The
// HTTP/2 session drains: requests already on it finish there, and it closes once the new session
// holds every tunnel and its last request ended (at most drain_grace later).
#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <algorithm>

#include "agent/edge_dialer.h"
#include "agent/tunnel_agent.h"
#include "agent/wt_client.h"
#include "quic/tls_context.h"

namespace wtmesh::agent {

namespace asio = boost::asio;

void TunnelAgent::arm_quic_probe(uint64_t n) {
  probe_timer_.expires_after(options_.quic_probe_every);
  probe_timer_.async_wait([this, n, alive = std::weak_ptr<int>(alive_)](boost::system::error_code ec) {
    if (ec || alive.expired() || stopped_ || n != attempt_ || !connected() ||
        transport_in_use_ != EdgeTransport::kH2)
      return;
    std::string error;
    std::shared_ptr<const quic::TlsClientContext> tls = edge_trust(&error);
    if (!tls) {
      spdlog::debug("agent: no QUIC probe: {}", error);
      return arm_quic_probe(n);
    }
    DialOptions dial{options_.edge, std::move(tls), options_.transport, EdgeTransport::kQuic};
    dial.avoid = avoid_;
    // A probe that gets no answer should not take the 10 s of a first connection.
    dial.transport.handshake_timeout =
        std::min(dial.transport.handshake_timeout, std::chrono::milliseconds(3000));
    probe_ = std::make_unique<EdgeDialer>(io_, std::move(dial),
                                          [this, n](std::unique_ptr<WtClient> quic, const std::string& why) {
                                            on_quic_probe(n, std::move(quic), why);
                                          });
    if (!probe_->start(&error)) {
      probe_.reset();
      spdlog::debug("agent: QUIC probe could not start: {}", error);
      arm_quic_probe(n);
    }
  });
}

void TunnelAgent::on_edge_drain(uint64_t n) {
  if (stopped_ || n != attempt_ || !connected()) return;
  notice("the edge " + options_.edge.authority() + " (" + current_address_.to_string() +
         ") is draining: moving to a new session (" + std::to_string(session_->active_requests()) +
         " request(s) under way finish on this one)");
  avoid_ = current_address_;
  if (!options_.edge_alternates.empty()) {
    // The next edge of the list; the draining one goes to its end (it comes back after a restart).
    options_.edge_alternates.push_back(std::exchange(options_.edge, options_.edge_alternates.front()));
    options_.edge_alternates.erase(options_.edge_alternates.begin());
    avoid_.reset();
  }
  probe_.reset();
  probe_timer_.cancel();
  watchdog_.cancel();
  for (auto& t : register_timers_) t->cancel();
  register_timers_.clear();
  // The edge closes it (its grace bounds what is left on it); edge_drain_limit only if it never does.
  Draining d{std::move(client_), std::move(session_),
             std::chrono::steady_clock::now() + options_.edge_drain_limit};
  d.edge_drained = true;
  keep_draining(std::move(d));
  wt_session_ = nullptr;
  arm_drain();
  attempt();  // no backoff: the old session serves meanwhile; a refused attempt backs off as usual
}

void TunnelAgent::on_quic_probe(uint64_t n, std::unique_ptr<WtClient> quic, const std::string& why) {
  const boost::asio::ip::address probe_remote = probe_ ? probe_->remote().address() : current_address_;
  probe_.reset();  // it called us from a fresh handler and touches nothing after
  if (stopped_ || n != attempt_ || !connected()) return;
  if (!quic) {
    spdlog::debug("agent: QUIC still does not reach the edge: {}", why);
    return arm_quic_probe(n);
  }
  std::string token = attempt_token_;
  if (options_.credential) {
    try {
      token = options_.credential->mint(options_.session_token_ttl);
    } catch (const std::exception& e) {
      spdlog::debug("agent: staying on HTTP/2: cannot mint a session token: {}", e.what());
      return arm_quic_probe(n);
    }
  }
  notice("QUIC reaches the edge again: moving to a new session over QUIC (" +
         std::to_string(session_->active_requests()) + " request(s) finish on the HTTP/2 session)");
  for (auto& t : register_timers_) t->cancel();
  register_timers_.clear();
  watchdog_.cancel();
  current_address_ = probe_remote;
  keep_draining(Draining{std::move(client_), std::move(session_),
                         std::chrono::steady_clock::now() + options_.drain_grace});
  wt_session_ = nullptr;
  taken_refusals_.clear();
  registered_.clear();
  attempt_token_ = std::move(token);
  const uint64_t next = ++attempt_;
  ++attempts_;
  arm_drain();
  on_dialed(next, std::move(quic), "");
  if (next == attempt_ && !stopped_) arm_watchdog(next);
}

void TunnelAgent::keep_draining(Draining d) {
  while (draining_.size() >= kMaxDraining) {
    auto closing =
        std::find_if(draining_.begin(), draining_.end(), [](const Draining& x) { return x.closing; });
    if (closing != draining_.end()) {
      // Its close went out when it was closed: tear it down now, through drain_step's own path.
      closing->deadline = std::chrono::steady_clock::now() - std::chrono::seconds(3);
      drain_step();
      continue;
    }
    // Close the oldest; drain_step tears it down once its close had time to leave (or the next
    // replaced session does, above). At most kMaxDraining + 1 are kept.
    Draining& oldest = draining_.front();
    notice("closing a replaced session early: " + std::to_string(kMaxDraining) +
           " replaced sessions are already finishing their requests");
    oldest.closing = true;
    oldest.deadline = std::chrono::steady_clock::now();
    oldest.session->close(tunnel::kCloseNormal, "moved to a new session");
    break;
  }
  draining_.push_back(std::move(d));
}

void TunnelAgent::arm_drain() {
  drain_timer_.expires_after(std::chrono::milliseconds(200));
  drain_timer_.async_wait([this, alive = std::weak_ptr<int>(alive_)](boost::system::error_code ec) {
    if (ec || alive.expired()) return;
    drain_step();
    if (!draining_.empty()) arm_drain();
  });
}

void TunnelAgent::drain_step() {
  const auto now = std::chrono::steady_clock::now();
  const bool replaced = connected() && registered_.size() >= options_.tunnels.size();
  for (auto it = draining_.begin(); it != draining_.end();) {
    Draining& d = *it;
    // Closed by the edge: nothing is left to send. Closed by us: the close capsule had a step to
    // leave; then the connection ends in order (HTTP/2: GOAWAY, then TLS close once nghttp2 wrote its
    // last frames; a socket closed under them would lose them) and is forgotten once closed, or 2 s
    // after the close at most.
    bool gone =
        (d.session->closed() && !d.closing) || (d.closing && now >= d.deadline + std::chrono::seconds(2));
    if (!gone && d.closing && now > d.deadline) {
      if (d.client && !d.client_closing) {
        d.client_closing = true;
        d.client->close("moved to a new session");
      }
      gone = !d.client || d.client->closed();
    }
    if (gone) {
      for (auto& p : udp_ports_) {
        if (p && p->session() == d.session.get()) p->set_session(connected() ? session_.get() : nullptr);
      }
      tearing_down_ = true;  // its last callbacks are for an old attempt anyway
      d.client.reset();      // the client first: its session reports to the handler
      d.session.reset();
      tearing_down_ = false;
      it = draining_.erase(it);
      continue;
    }
    if (d.edge_drained && !d.closing && now < d.deadline) {
      // The draining edge relays what is under way on it (the last bytes of a response we finished
      // writing may still be in flight or in the edge's buffers) and closes it itself: not ours to
      // close, whatever our drain_grace says (a download longer than that is the edge's to allow).
      if (replaced && !d.moved_told) {
        d.moved_told = true;
        notice("the new session holds every tunnel: telling the draining edge (" +
               std::to_string(d.session->active_requests()) + " request(s) still on the old session)");
        d.session->drain();
      }
      ++it;
      continue;
    }
    // A request is over for us once its last bytes are written, but they may still sit in the
    // session's buffer (HTTP/2) or be unacknowledged (QUIC): closing then would reset the stream and
    // cut the response short, so wait until they reached the edge (drain_grace bounds the wait).
    const bool finished = d.session->active_requests() == 0 && d.session->delivered();
    if (!d.closing && ((replaced && finished) || now >= d.deadline)) {
      const size_t left = d.session->active_requests();
      std::string why;
      if (d.edge_drained) {
        why = fmt::format(
            "closing the draining edge's old session after {:.1f} s: the edge did not close it "
            "({} request(s) still on it)",
            options_.edge_drain_limit.count() / 1000.0, left);
      } else if (replaced && finished) {
        why = "closing the replaced session: its requests finished and reached the edge";
      } else {
        why = fmt::format("closing the replaced session after {:.1f} s with {} request(s) still on it{}",
                          options_.drain_grace.count() / 1000.0, left,
                          d.session->delivered() ? "" : " and bytes the edge has not received");
      }
      notice(why);
      d.closing = true;
      d.deadline = now;
      d.session->close(tunnel::kCloseNormal, "moved to a new session");
    }
    ++it;
  }
  // The draining edge's sessions are gone: later dials may take any address again (its replacement).
  if (std::none_of(draining_.begin(), draining_.end(), [](const Draining& d) { return d.edge_drained; }))
    avoid_.reset();
}

}  // namespace wtmesh::agent
