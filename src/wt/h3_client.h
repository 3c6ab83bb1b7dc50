// WebTransport client side over HTTP/3: one wt::H3Client per QUIC connection. It is the
// h3::Handler of that connection (installed by the constructor) and owns the sessions it opens.
//
// connect() sends the extended CONNECT (:method CONNECT, :scheme https, :authority, :path,
// :protocol webtransport, sec-webtransport-http3-draft02: 1, plus the caller's headers, e.g. origin
// or authorization) as soon as the server's SETTINGS are known to enable WebTransport and H3
// datagrams. A 2xx response opens the session (on_ready); any other final status ends it with
// on_closed(status, "HTTP <status>"). Streams and datagrams the server sends before its response
// arrives are buffered (bounded) and delivered after on_ready.
#pragma once

#include <string>
#include <string_view>

#include "h3/connection.h"
#include "wt/config.h"
#include "wt/h3_session_registry.h"
#include "wt/h3_session.h"
#include "wt/session.h"

namespace wtmesh::wt {

class H3Client final : public H3SessionRegistry {
 public:
  // Installs itself as `conn`'s handler; `conn` must outlive this object.
  explicit H3Client(h3::Connection& conn, ClientConfig config = {});
  ~H3Client() override;

  // Starts a session; `handler` gets on_attached before this returns. nullptr (see last_error())
  // when the connection is closed, max_sessions are live, the server's SETTINGS do not offer
  // WebTransport, or no request stream can be opened now.
  H3Session* connect(std::string_view authority, std::string_view path, const h3::HeaderList& extra_headers,
                     SessionHandler* handler);
  const std::string& last_error() const { return last_error_; }
  // The live session on CONNECT stream `session_id`, or nullptr.
  H3Session* session(StreamId session_id) const { return find_session(session_id); }

  // h3::Handler
  void on_peer_settings(const h3::Settings& peer) override;
  void on_headers(StreamId id, h3::HeaderList headers, bool fin) override;

 private:
  // Every session id we can hear about is one we requested (and so is known).
  bool may_become_session(StreamId /*session_id*/) const override { return false; }
  // Sends the CONNECT for an unsent session; false with last_error_ set if it cannot.
  bool send_connect(H3Session& session);

  std::string last_error_;
};

}  // namespace wtmesh::wt
