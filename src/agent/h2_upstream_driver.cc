#include "agent/h2_upstream_driver.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <boost/asio/post.hpp>


namespace wtmesh::agent {

namespace asio = boost::asio;

namespace {
constexpr size_t kConnReadChunk = 64 * 1024;
}  // namespace

// --- H2UpstreamConn ---------------------------------------------------------------------------------------

H2UpstreamConn::H2UpstreamConn(H2UpstreamClient& client, std::shared_ptr<UpstreamConnection> conn,
                               H2UpstreamLimits limits)
    : client_(client), conn_(std::move(conn)), session_(limits) {}

void H2UpstreamConn::detach(int64_t id64, bool cancel) {
  const auto id = static_cast<int32_t>(id64);
  forget_stream(id);
  if (cancel) {
    session_.cancel(id);
  } else {
    session_.forget(id);
  }
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
  notify_all();
  client_.on_conn_closed(this);
}

void H2UpstreamConn::shutdown_and_close() {
  session_.shutdown();  // GOAWAY, written before the socket closes only if it can go at once
  pump();
  close();
}

std::optional<int64_t> H2UpstreamConn::open(const tunnel::HeaderPairs& fields, bool end_stream,
                                            std::string* error) {
  const int32_t id = session_.open(fields, end_stream, error);
  if (id == 0) return std::nullopt;
  return id;
}

size_t H2UpstreamConn::send(int64_t id, std::span<const uint8_t> data, bool fin) {
  return session_.send(static_cast<int32_t>(id), data, fin);
}

bool H2UpstreamConn::send_trailers(int64_t id, const tunnel::HeaderPairs& trailers) {
  return session_.send_trailers(static_cast<int32_t>(id), trailers);
}

std::optional<MuxHead> H2UpstreamConn::take_head(int64_t id) {
  auto h = session_.take_head(static_cast<int32_t>(id));
  if (!h) return std::nullopt;
  return MuxHead{h->status, std::move(h->headers), h->end_stream};
}

std::vector<MuxHead> H2UpstreamConn::take_interim(int64_t id) {
  std::vector<MuxHead> out;
  for (auto& h : session_.take_interim(static_cast<int32_t>(id)))
    out.push_back(MuxHead{h.status, std::move(h.headers), false});
  return out;
}

tunnel::HeaderPairs H2UpstreamConn::take_trailers(int64_t id) {
  return session_.take_trailers(static_cast<int32_t>(id));
}

std::span<const uint8_t> H2UpstreamConn::received(int64_t id) const {
  return session_.received(static_cast<int32_t>(id));
}

void H2UpstreamConn::consume(int64_t id, size_t n) { session_.consume(static_cast<int32_t>(id), n); }

bool H2UpstreamConn::finished(int64_t id) const { return session_.finished(static_cast<int32_t>(id)); }

std::optional<std::string> H2UpstreamConn::failure(int64_t id) const {
  return session_.failure(static_cast<int32_t>(id));
}

bool H2UpstreamConn::refused(int64_t id) const {
  bool refused = false;
  session_.failure(static_cast<int32_t>(id), &refused);
  return refused;
}

// --- H2UpstreamClient -------------------------------------------------------------------------------------

H2UpstreamClient::H2UpstreamClient(asio::io_context& io, UpstreamTarget target, H2ClientLimits limits)
    : MuxUpstreamClient(io, static_cast<const MuxClientLimits&>(limits), limits.session.max_streams),
      target_(std::move(target)),
      limits_(limits) {}

H2UpstreamClient::~H2UpstreamClient() { clear(); }

std::string H2UpstreamClient::name() const {
  return endpoint_text(target_.endpoint.address(), target_.endpoint.port());
}

void H2UpstreamClient::open_connection() {
  UpstreamConnection::open(io(), target_,
                           [this, alive = alive()](std::shared_ptr<UpstreamConnection> conn,
                                                   const std::string& error, bool tls_failed) {
                             if (alive.expired()) {
                               if (conn) conn->close();
                               return;
                             }
                             if (!conn) return connection_failed(error, tls_failed);
                             if (target_.tls && conn->alpn() != "h2") {
                               conn->close();
                               return connection_failed("the TLS upstream did not choose h2 (ALPN \"" +
                                                            conn->alpn() + "\") although it did before",
                                                        true);
                             }
                             connection_ready(std::make_shared<H2UpstreamConn>(*this, std::move(conn),
                                                                               limits_.session));
                           });
}

void H2UpstreamClient::adopt(std::shared_ptr<UpstreamConnection> conn) {
  add_connection(std::make_shared<H2UpstreamConn>(*this, std::move(conn), limits_.session));
}

}  // namespace wtmesh::agent
