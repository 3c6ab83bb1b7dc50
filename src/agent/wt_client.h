// A WebTransport client connection to an edge: resolves the edge, dials QUIC from an ephemeral UDP
// port, and stacks h3::Connection + wt::H3Client on it; or, with EdgeTransport::kH2, WebTransport over
// HTTP/2 on TCP + TLS (agent/h2_wt_client.h). Either way callers get a wt::Session. Used by
// `wtmesh doctor` and the agent.
#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/udp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "agent/edge_url.h"
#include "agent/resumption_store.h"
#include "h3/connection.h"
#include "quic/endpoint.h"
#include "quic/tls_context.h"
#include "wt/h3_client.h"

namespace wtmesh::agent {

class H2WtClient;

class WtClient {
 public:
  WtClient(boost::asio::io_context& io, quic::TlsClientContext tls, quic::TransportLimits limits = {},
           wt::ClientConfig config = {});
  // With a trust shared with others (an h3 upstream's, used by its request tier too).
  WtClient(boost::asio::io_context& io, std::shared_ptr<const quic::TlsClientContext> tls,
           quic::TransportLimits limits = {}, wt::ClientConfig config = {});
  ~WtClient();
  // Before dial(): kH2 dials WebTransport over HTTP/2 instead of QUIC (kAuto is treated as kQuic here).
  void use_transport(EdgeTransport t) { transport_ = t; }
  // kQuic or kH2: what this client dials.
  EdgeTransport transport() const {
    return transport_ == EdgeTransport::kH2 ? transport_ : EdgeTransport::kQuic;
  }
  WtClient(const WtClient&) = delete;
  WtClient& operator=(const WtClient&) = delete;

  // Before dial(), QUIC only: resume with the store's ticket for this edge and send the session
  // request in 0-RTT (ready_for_requests() at once), and keep each ticket the edge issues there.
  void use_resumption(std::shared_ptr<ResumptionStore> store) { resumption_ = std::move(store); }
  // Resolves the edge and starts the QUIC handshake. False with `error` set on failure. With `remote`,
  // that address is dialled instead and `edge.host` is only the TLS name (a local upstream's SNI).
  bool dial(const EdgeUrl& edge, std::string* error, const boost::asio::ip::udp::endpoint* remote = nullptr);
  bool handshake_completed() const;
  // Requests may be sent now: the handshake completed, or this QUIC client resumes with 0-RTT.
  bool ready_for_requests() const {
    return handshake_completed() || (conn_ != nullptr && conn_->early_data_attempted() && !closed());
  }
  // This client sent 0-RTT and the edge took it / refused it (the connection then closed).
  bool resumed_with_early_data() const;
  bool early_data_rejected() const {
    return early_rejected_ || (conn_ != nullptr && conn_->early_data_rejected());
  }
  // Forgets the ticket this client resumed with (refused, or its handshake did not follow in time).
  // True when there was one.
  bool forget_resumption();
  // Before dial(): called from a fresh handler (so it may destroy this client) when the handshake
  // completed (QUIC: TLS done; HTTP/2: TLS done and the edge's SETTINGS in) or the connection closed.
  void set_on_change(std::function<void()> fn) { on_change_ = std::move(fn); }
  // The connection is gone (closed by either side, idle, or failed handshake).
  bool closed() const;
  const std::string& close_reason() const;

  // Opens a WebTransport session at `path` (sent once the server's SETTINGS arrive). nullptr with
  // `error` set if it cannot be started. The session is valid until its handler's on_closed returns;
  // a refusal is reported typed (SessionHandler::on_refused, Session::response()).
  wt::Session* open_session(const std::string& path, const wt::HeaderPairs& extra,
                            wt::SessionHandler* handler, std::string* error);
  // The QUIC connection (nullptr over HTTP/2).
  quic::Connection* connection() const { return conn_; }
  // Over HTTP/2: what TLS negotiated ("TLS1.3 h2"); "" otherwise.
  std::string tls_summary() const;
  void close(std::string_view reason);

 private:
  struct App;
  void post_change();
  void keep_ticket(quic::ResumptionTicket ticket);
  std::string resumption_key() const;
  std::shared_ptr<ResumptionStore> resumption_;
  bool early_rejected_ = false;
  boost::asio::io_context& io_;
  std::shared_ptr<const quic::TlsClientContext> tls_;
  quic::TransportLimits limits_;
  wt::ClientConfig config_;
  std::optional<EdgeUrl> edge_;
  std::unique_ptr<quic::Endpoint> endpoint_;
  quic::Connection* conn_ = nullptr;
  App* app_ = nullptr;  // owned by conn_
  std::string close_reason_;
  bool closed_ = false;
  EdgeTransport transport_ = EdgeTransport::kQuic;
  std::unique_ptr<H2WtClient> h2_;
  std::function<void()> on_change_;
  std::shared_ptr<int> alive_ = std::make_shared<int>(0);
};

}  // namespace wtmesh::agent
