#include "agent/h2_upstream_driver.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <boost/asio/post.hpp>

#include "agent/h2_codec.h"
#include "tunnel/framed_body.h"

namespace wtmesh::agent {

namespace asio = boost::asio;

namespace {
constexpr size_t kConnReadChunk = 64 * 1024;
constexpr const char* kNoExtendedConnect =
    "the HTTP/2 upstream does not accept WebSockets (no SETTINGS_ENABLE_CONNECT_PROTOCOL, RFC 8441)";
}  // namespace

// --- H2UpstreamConn ---------------------------------------------------------------------------------------

H2UpstreamConn::H2UpstreamConn(H2UpstreamClient& client, std::shared_ptr<UpstreamConnection> conn,
                               H2UpstreamLimits limits)
    : client_(client), conn_(std::move(conn)), session_(limits) {}

void H2UpstreamConn::detach(int32_t id, bool cancel) {
  streams_.erase(id);
  if (cancel) {
    session_.cancel(id);
  } else {
    session_.forget(id);
  }
  if (streams_.empty()) idle_since_ = std::chrono::steady_clock::now();
  pump();
  client_.serve_waiters();
}

void H2UpstreamConn::pump() {
  if (pumping_) {
    again_ = true;
    return;
  }
  pumping_ = true;
  auto keep = shared_from_this();
  do {
    again_ = false;
    start_io();
    dispatch();
  } while (again_ && !closed_);
  pumping_ = false;
  if (!closed_ && session_.failed()) {
    spdlog::debug("tunnel: HTTP/2 upstream connection to {} ended: {}", client_.name(), session_.error());
    close();
  }
}

void H2UpstreamConn::start_io() {
  if (closed_) return;
  if (!writing_) {
    const auto out = session_.output();
    if (!out.empty()) {
      write_buf_.assign(reinterpret_cast<const char*>(out.data()), out.size());
      session_.consume_output(out.size());
      writing_ = true;
      conn_->write(write_buf_, [self = shared_from_this()](const std::string& error) {
        self->writing_ = false;
        if (self->closed_) return;
        if (!error.empty()) self->session_.set_error("write to the upstream failed: " + error);
        self->pump();
      });
    }
  }
  if (!reading_ && session_.want_read()) {
    reading_ = true;
    conn_->read(kConnReadChunk, [self = shared_from_this()](std::span<const uint8_t> data, bool eof,
                                                            const std::string& error) {
      self->reading_ = false;
      if (self->closed_) return;
      if (!data.empty()) self->session_.feed(data);
      if (eof) {
        self->session_.feed_eof();
      } else if (!error.empty()) {
        self->session_.set_error("read from the upstream failed: " + error);
      }
      self->pump();
      self->client_.serve_waiters();
    });
  }
}

void H2UpstreamConn::dispatch() {
  for (int32_t id : session_.take_changed()) {
    auto it = streams_.find(id);
    if (it != streams_.end()) it->second->on_stream_event();
  }
}

void H2UpstreamConn::close() {
  if (closed_) return;
  closed_ = true;
  conn_->close();
  // Streams still attached learn it from the session's failure.
  if (!session_.failed()) session_.set_error("the upstream connection was closed");
  auto streams = streams_;
  for (auto& [id, d] : streams) d->on_stream_event();
  client_.on_conn_closed(this);
}

// --- H2UpstreamClient -------------------------------------------------------------------------------------

H2UpstreamClient::H2UpstreamClient(asio::io_context& io, UpstreamTarget target, H2ClientLimits limits)
    : io_(io), target_(std::move(target)), limits_(limits), sweep_(io) {}

H2UpstreamClient::~H2UpstreamClient() { clear(); }

void H2UpstreamClient::clear() {
  auto conns = std::move(conns_);
  conns_.clear();
  for (auto& c : conns) c->close();
  sweep_.cancel();
}

std::string H2UpstreamClient::name() const {
  const auto& ep = target_.endpoint;
  return (ep.address().is_v6() ? "[" + ep.address().to_string() + "]" : ep.address().to_string()) + ":" +
         std::to_string(ep.port());
}

// Whether `c` can take `d` now (kYes), never will (kNo: a WebSocket and a peer without extended
// CONNECT), or may once its SETTINGS arrived (kLater).
H2UpstreamClient::Fit H2UpstreamClient::fit(const H2UpstreamConn& c, const H2StreamDriver& d) {
  if (!c.usable()) return Fit::kNo;
  if (!d.websocket()) return Fit::kYes;
  if (!c.session_settled()) return Fit::kLater;
  return c.session_connect_protocol() ? Fit::kYes : Fit::kRefuses;
}

void H2UpstreamClient::acquire(const std::shared_ptr<H2StreamDriver>& driver) {
  bool later = false;
  for (auto& c : conns_) {
    switch (fit(*c, *driver)) {
      case Fit::kYes:
        return driver->on_attached(c);
      case Fit::kRefuses:
        return driver->on_connect_failed(kNoExtendedConnect, false);
      case Fit::kLater:
        later = true;
        break;
      case Fit::kNo:
        break;
    }
  }
  if (waiting_.size() >= limits_.max_waiting) {
    return driver->on_connect_failed(
        "every HTTP/2 connection is full and " + std::to_string(limits_.max_waiting) + " requests wait",
        false);
  }
  waiting_.push_back(driver);
  if (later) return;  // a connection's SETTINGS will tell (serve_waiters runs after every read)
  // A connection being opened serves up to its stream cap of waiters.
  const size_t coming = opening_ * limits_.session.max_streams;
  if (waiting_.size() > coming && conns_.size() + opening_ < limits_.max_connections) open_connection();
}

void H2UpstreamClient::open_connection() {
  ++opening_;
  ++opened_;
  UpstreamConnection::open(
      io_, target_,
      [this, alive = std::weak_ptr<int>(alive_)](std::shared_ptr<UpstreamConnection> conn,
                                                 const std::string& error, bool tls_failed) {
        if (alive.expired()) {
          if (conn) conn->close();
          return;
        }
        --opening_;
        if (!conn) {
          // Every waiter hears it: the next request tries again.
          auto waiting = std::move(waiting_);
          waiting_.clear();
          for (auto& w : waiting) {
            if (auto d = w.lock()) d->on_connect_failed(error, tls_failed);
          }
          return;
        }
        if (target_.tls && conn->alpn() != "h2") {
          conn->close();
          auto waiting = std::move(waiting_);
          waiting_.clear();
          const std::string why =
              "the TLS upstream did not choose h2 (ALPN \"" + conn->alpn() + "\") although it did before";
          for (auto& w : waiting) {
            if (auto d = w.lock()) d->on_connect_failed(why, true);
          }
          return;
        }
        adopt(std::move(conn));
      });
}

void H2UpstreamClient::adopt(std::shared_ptr<UpstreamConnection> conn) {
  auto c = std::make_shared<H2UpstreamConn>(*this, std::move(conn), limits_.session);
  conns_.push_back(c);
  c->pump();  // the preface and SETTINGS
  serve_waiters();
  arm_sweep();
}

void H2UpstreamClient::serve_waiters() {
  while (!waiting_.empty()) {
    auto d = waiting_.front().lock();
    if (!d || !d->waiting()) {
      waiting_.pop_front();
      continue;
    }
    std::shared_ptr<H2UpstreamConn> found;
    bool later = false, refuses = false;
    for (auto& c : conns_) {
      const Fit f = fit(*c, *d);
      if (f == Fit::kYes) {
        found = c;
        break;
      }
      later = later || f == Fit::kLater;
      refuses = refuses || f == Fit::kRefuses;
    }
    if (!found && refuses && !later) {
      waiting_.pop_front();
      d->on_connect_failed(kNoExtendedConnect, false);
      continue;
    }
    if (!found) {
      if (!later && opening_ == 0 && conns_.size() < limits_.max_connections) open_connection();
      return;
    }
    waiting_.pop_front();
    d->on_attached(found);
  }
}

void H2UpstreamClient::on_conn_closed(H2UpstreamConn* conn) {
  auto it = std::find_if(conns_.begin(), conns_.end(), [&](const auto& c) { return c.get() == conn; });
  if (it == conns_.end()) return;
  auto keep = *it;  // destroyed after this call returns
  conns_.erase(it);
  asio::post(io_, [keep] {});
  asio::post(io_, [this, alive = std::weak_ptr<int>(alive_)] {
    if (!alive.expired()) serve_waiters();
  });
}

void H2UpstreamClient::arm_sweep() {
  if (sweep_armed_ || conns_.empty()) return;
  sweep_armed_ = true;
  sweep_.expires_after(std::max(limits_.idle_timeout / 4, std::chrono::milliseconds(10)));
  sweep_.async_wait([this, alive = std::weak_ptr<int>(alive_)](boost::system::error_code ec) {
    if (alive.expired()) return;
    sweep_armed_ = false;
    if (ec) return;
    const auto now = std::chrono::steady_clock::now();
    std::vector<std::shared_ptr<H2UpstreamConn>> idle;
    for (auto& c : conns_) {
      if (c->streams() == 0 && now - c->idle_since() >= limits_.idle_timeout) idle.push_back(c);
    }
    for (auto& c : idle) {
      c->session().shutdown();  // GOAWAY, written before the socket closes only if it can go at once
      c->pump();
      c->close();
    }
    arm_sweep();
  });
}

// --- H2StreamDriver ---------------------------------------------------------------------------------------

namespace {

bool asks_websocket(const tunnel::RequestHead& head) {
  auto lower = [](std::string s) {
    for (char& c : s) c = static_cast<char>(c >= 'A' && c <= 'Z' ? c + 32 : c);
    return s;
  };
  return std::any_of(head.headers.begin(), head.headers.end(), [&](const auto& f) {
    return lower(f.first) == "upgrade" && lower(f.second) == "websocket";
  });
}

}  // namespace

H2StreamDriver::H2StreamDriver(H2UpstreamClient& client, wt::Session& session, wt::StreamId id,
                               tunnel::RequestHead head, DoneFn done, ExchangeLimits limits)
    : ExchangeDriver(*this, session, id, std::make_unique<H2Codec>(), head, std::move(done), limits),
      client_(client),
      websocket_(asks_websocket(head)) {}

H2StreamDriver::~H2StreamDriver() { detach(true); }

void H2StreamDriver::connect() {
  waiting_ = true;
  client_.acquire(shared_from_this());
}

void H2StreamDriver::on_attached(const std::shared_ptr<H2UpstreamConn>& conn) {
  if (!waiting_) return;
  waiting_ = false;
  conn_ = conn;
  head_delivered_ = false;
  framed_ = false;
  // A multiplexed stream counts as a reused connection: a refused stream (GOAWAY, REFUSED_STREAM) is
  // replayed once, as a dead keep-alive connection is for HTTP/1.1.
  core_.on_connected(true);
}

void H2StreamDriver::on_connect_failed(const std::string& why, bool tls) {
  if (!waiting_) return;
  waiting_ = false;
  core_.on_connect_failed(why, tls);
}

void H2StreamDriver::start_write(std::string_view bytes, bool fin) {
  writing_ = true;
  pending_ = bytes;
  pending_off_ = 0;
  pending_fin_ = fin;
  if (h2_id_ == 0) {
    // The codec's first write starts with the request head (tunnel encoding).
    tunnel::HeadReader<tunnel::RequestHead> reader;
    tunnel::RequestHead head;
    const auto all = std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size());
    if (reader.feed(all, head) != tunnel::WireError::kNone) {
      writing_ = false;
      asio::post(client_.io(), [self = shared_from_this(), gen = gen_] {
        if (gen == self->gen_)
          self->core_.on_written("internal error: no request head for the HTTP/2 stream");
      });
      return;
    }
    pending_off_ = bytes.size() - reader.take_body().size();
    tunnel::HeaderPairs fields;
    fields.reserve(head.headers.size() + 4);
    fields.emplace_back(":method", head.method);
    if (head.method == "CONNECT") fields.emplace_back(":protocol", "websocket");  // the codec's WebSocket
    fields.emplace_back(":scheme", client_.tls() ? "https" : "http");
    if (!head.authority.empty()) fields.emplace_back(":authority", head.authority);
    fields.emplace_back(":path", head.target);
    for (auto& f : head.headers) fields.push_back(std::move(f));
    const bool end_stream = fin && pending_off_ == bytes.size();
    std::string error;
    h2_id_ = conn_->session().open(fields, end_stream, &error);
    if (h2_id_ == 0) {
      writing_ = false;
      asio::post(client_.io(), [self = shared_from_this(), gen = gen_, error] {
        if (gen == self->gen_) self->core_.on_written(error);
      });
      return;
    }
    conn_->attach(h2_id_, this);
    if (end_stream) pending_fin_ = false;  // already ended by the HEADERS
  }
  progress_write();
  conn_->pump();
}

void H2StreamDriver::progress_write() {
  if (!writing_ || !conn_) return;
  auto& s = conn_->session();
  const auto rest = pending_.substr(pending_off_);
  if (!rest.empty() || pending_fin_) {
    const size_t n =
        s.send(h2_id_, std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(rest.data()), rest.size()),
               pending_fin_);
    pending_off_ += n;
    if (pending_off_ == pending_.size()) pending_fin_ = false;
  }
  std::string error;
  if (auto why = s.failure(h2_id_)) error = *why;
  if (pending_off_ < pending_.size() && error.empty()) return;  // on_stream_event resumes
  writing_ = false;
  asio::post(client_.io(), [self = shared_from_this(), gen = gen_, error] {
    if (gen == self->gen_) self->core_.on_written(error);
  });
}

void H2StreamDriver::read(size_t max) {
  reading_ = true;
  read_max_ = max;
  progress_read();
}

void H2StreamDriver::progress_read() {
  if (!reading_ || !conn_ || h2_id_ == 0) return;
  auto& s = conn_->session();
  auto deliver = [this](bool eof, std::string error) {
    reading_ = false;
    asio::post(client_.io(), [self = shared_from_this(), gen = gen_, eof, error = std::move(error)] {
      if (gen == self->gen_) self->core_.on_read(self->read_buf_, eof, error);
    });
  };
  // To the codec (H2Codec) the stream reads as the tunnel's own response encoding: interim heads, the
  // head, and a framed body that ends with the trailer section (docs/protocol.md §4.1).
  if (!head_delivered_) {
    read_buf_.clear();
    for (const auto& ih : s.take_interim(h2_id_)) {
      tunnel::ResponseHead rh;
      rh.status = ih.status;
      rh.headers = ih.headers;
      const auto bytes = tunnel::encode_response_head(rh);
      read_buf_.insert(read_buf_.end(), bytes.begin(), bytes.end());
    }
    if (auto h = s.take_head(h2_id_)) {
      head_delivered_ = true;
      tunnel::ResponseHead rh;
      rh.status = h->status;
      rh.has_body = rh.framed = !h->end_stream;
      framed_ = rh.framed;
      rh.headers = std::move(h->headers);
      const auto bytes = tunnel::encode_response_head(rh);
      read_buf_.insert(read_buf_.end(), bytes.begin(), bytes.end());
    }
    if (!read_buf_.empty()) return deliver(false, {});
  } else if (const auto got = s.received(h2_id_); !got.empty()) {
    const size_t n = std::min(got.size(), read_max_);
    read_buf_.clear();
    tunnel::append_body_chunk(read_buf_, got.first(n));
    s.consume(h2_id_, n);
    conn_->pump();  // the WINDOW_UPDATE
    return deliver(false, {});
  } else if (s.finished(h2_id_)) {
    read_buf_.clear();
    if (framed_ && !tunnel::append_body_end(read_buf_, s.take_trailers(h2_id_)))
      return deliver(false, "the upstream's trailer section is over the tunnel's limits");
    framed_ = false;
    return deliver(true, {});
  }
  if (auto why = s.failure(h2_id_)) {
    read_buf_.clear();
    return deliver(false, *why);
  }
}

void H2StreamDriver::on_stream_event() {
  auto keep = shared_from_this();
  progress_write();
  progress_read();
}

void H2StreamDriver::detach(bool cancel) {
  ++gen_;
  writing_ = reading_ = false;
  waiting_ = false;
  if (conn_ && h2_id_ != 0) conn_->detach(h2_id_, cancel);
  conn_.reset();
  h2_id_ = 0;
}

void H2StreamDriver::close() { detach(true); }

void H2StreamDriver::release() { detach(false); }

void H2StreamDriver::shutdown_write() {
  if (!conn_ || h2_id_ == 0) return;
  conn_->session().send(h2_id_, {}, true);
  conn_->pump();
}

}  // namespace wtmesh::agent
