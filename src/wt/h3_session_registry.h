// The per-connection session registry of WebTransport over HTTP/3, shared by server and client: an
// h3::Handler that owns the sessions of one h3::Connection and routes WT streams, HTTP datagrams and
// CONNECT-stream events to them. wt::H3Server and wt::H3Client (the only concrete classes) add the
// request/response logic.
//
// Stream bookkeeping, all bounded:
//  - sessions own the ids of their open streams (a wt::StreamTable each, wt/stream_table.h; erased on
//    on_wt_closed, CVE-2026-21438);
//  - "orphans" are streams we refused or whose session ended: their data is consumed and dropped
//    until the transport forgets them (bounded by QUIC's own stream limits);
//  - streams and datagrams naming a session that is not known yet are held in a PendingBuffer
//    (count, bytes and time capped) and handed to the session when it opens, or refused with
//    WT_BUFFERED_STREAM_REJECTED; streams naming a session that is gone get WT_SESSION_GONE.
// Time: sans-I/O. The I/O driver calls on_tick(now) whenever next_deadline() passes.
#pragma once

#include <chrono>
#include <deque>
#include <memory>
#include <optional>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "h3/connection.h"
#include "wt/config.h"
#include "wt/h3_config.h"
#include "wt/h3_session.h"
#include "wt/pending.h"

namespace wtmesh::wt {

class H3SessionRegistry : public h3::Handler {
 public:
  ~H3SessionRegistry() override;
  H3SessionRegistry(const H3SessionRegistry&) = delete;
  H3SessionRegistry& operator=(const H3SessionRegistry&) = delete;

  // Expires buffered streams/datagrams (and, on the server, CONNECTs waiting for SETTINGS).
  void on_tick(SteadyTime now);
  // When on_tick must next be called; nullopt when nothing is waiting.
  virtual std::optional<SteadyTime> next_deadline() const;

  h3::Connection& connection() { return conn_; }
  // Live (not yet closed) sessions.
  size_t session_count() const;
  // Debug: every per-stream record held (sessions' tables, orphans, buffered streams).
  size_t stream_state_size() const;
  size_t buffered_stream_count() const { return pending_.stream_count(); }
  size_t buffered_datagram_count() const { return pending_.datagram_count(); }
  bool connection_closed() const { return connection_closed_; }

  // h3::Handler — shared routing.
  void on_body(StreamId id, std::span<const uint8_t> data, bool fin) override;
  void on_request_reset(StreamId id, uint64_t h3_error) override;
  void on_request_writable(StreamId id) override;
  void on_request_closed(StreamId id) override;
  void on_wt_stream(StreamId id, uint64_t session_id) override;
  void on_wt_data(StreamId id, std::span<const uint8_t> data, bool fin) override;
  void on_wt_reset(StreamId id, uint64_t h3_error) override;
  void on_wt_stop_sending(StreamId id, uint64_t h3_error) override;
  void on_wt_writable(StreamId id) override;
  void on_wt_closed(StreamId id) override;
  void on_datagram(uint64_t quarter_stream_id, std::span<const uint8_t> payload) override;
  void on_goaway(uint64_t id) override;
  void on_streams_available() override;
  void on_connection_closed(uint64_t error_code, bool is_application, std::string_view reason) override;

 protected:
  H3SessionRegistry(h3::Connection& conn, const CommonConfig& config);

  // RAII markers. Entry wraps every h3 callback: at the outermost one, sessions that ended earlier
  // are destroyed first (never while app code or a Session method is on the stack). Busy wraps
  // Session methods and only counts.
  class Busy {
   public:
    explicit Busy(H3SessionRegistry& e) : e_(e) { ++e_.depth_; }
    ~Busy() { --e_.depth_; }
    Busy(const Busy&) = delete;
    Busy& operator=(const Busy&) = delete;

   private:
    H3SessionRegistry& e_;
  };
  class Entry : public Busy {
   public:
    explicit Entry(H3SessionRegistry& e) : Busy((e.destroy_finished(), e)) {}
  };

  // Role hook: may a not-yet-known `session_id` still become a session (so its streams wait)?
  virtual bool may_become_session(StreamId session_id) const = 0;
  // Role hook: a request stream that is not a session went away (server: deferred CONNECTs).
  virtual void on_other_request_gone(StreamId /*id*/) {}
  // Role hook: extra deadline work (server: deferred CONNECTs).
  virtual void on_tick_role(SteadyTime /*now*/) {}

  SteadyTime now() const;
  H3Session* find_session(StreamId session_id) const;
  // Snapshot of the live sessions (including client sessions without an id yet).
  std::vector<H3Session*> live_sessions() const;
  bool is_live(const H3Session* s) const;
  // Creates a session object (state kUnsent) owned by this endpoint.
  H3Session& create_session(SessionInfo info, SessionHandler* handler);
  // Files a session under its CONNECT stream id once it has one.
  void register_session(H3Session& session, StreamId id);
  // The session is open: hands it the streams and datagrams buffered for it.
  void deliver_buffered(H3Session& session);
  // `id` will never be a session (plain request, refused CONNECT, ended session).
  void mark_gone(StreamId id);
  bool is_gone(StreamId id) const;
  // Refuses a WT stream: RESET_STREAM (when we can send on it) + STOP_SENDING, then orphans it.
  void refuse_stream(StreamId id, uint64_t h3_error);
  void refuse_buffered(PendingBuffer::Stream& s, uint64_t h3_error);
  // `session_id` will not become a session: refuse what was buffered for it, remember it as gone.
  void forget_session_id(StreamId session_id, uint64_t h3_error);
  // Destroys ended sessions, unless something is on the stack (depth_ > 0).
  void destroy_finished();

  const CommonConfig config_;  // a copy of the role config's common part; pending_ refers to it
  h3::Connection& conn_;
  bool connection_closed_ = false;

 private:
  friend class H3Session;

  // Called by H3Session::end(): the session's streams become orphans, buffered ones are refused.
  void session_ended(H3Session& session, std::vector<StreamId> streams);
  H3Session* session_owning(StreamId stream) const;

  // Every session, until it ends; keyed by object address so unsent ones (no id yet) fit too.
  std::vector<std::unique_ptr<H3Session>> sessions_;
  std::unordered_map<StreamId, H3Session*> by_id_;
  std::vector<std::unique_ptr<H3Session>> finished_;  // ended, destroyed at depth 0
  std::unordered_set<StreamId> orphans_;
  PendingBuffer pending_;
  std::deque<StreamId> gone_;  // recently ended / non-session request ids (bounded FIFO)
  int depth_ = 0;
};

}  // namespace wtmesh::wt
