#include "agent/mux_upstream.h"

#include <algorithm>
#include <boost/asio/post.hpp>

#include "agent/h2_codec.h"
#include "tunnel/framed_body.h"

namespace wtmesh::agent {

namespace asio = boost::asio;

tunnel::HeaderPairs request_fields(tunnel::RequestHead head, bool tls) {
  tunnel::HeaderPairs fields;
  fields.reserve(head.headers.size() + 5);
  fields.emplace_back(":method", head.method);
  if (head.method == "CONNECT") fields.emplace_back(":protocol", "websocket");  // the codec's WebSocket
  fields.emplace_back(":scheme", tls ? "https" : "http");
  if (!head.authority.empty()) fields.emplace_back(":authority", head.authority);
  fields.emplace_back(":path", head.target);
  for (auto& f : head.headers) fields.push_back(std::move(f));
  return fields;
}

// --- MuxConn ----------------------------------------------------------------------------------------------

void MuxConn::forget_stream(int64_t id) {
  streams_.erase(id);
  if (streams_.empty()) idle_since_ = std::chrono::steady_clock::now();
}

void MuxConn::notify_all() {
  auto streams = streams_;
  for (auto& [id, d] : streams) d->on_stream_event();
}

// --- MuxUpstreamClient ------------------------------------------------------------------------------------

MuxUpstreamClient::MuxUpstreamClient(asio::io_context& io, MuxClientLimits limits,
                                     size_t streams_per_connection)
    : io_(io),
      limits_(limits),
      streams_per_connection_(std::max<size_t>(streams_per_connection, 1)),
      sweep_(io) {}

MuxUpstreamClient::~MuxUpstreamClient() { clear(); }

void MuxUpstreamClient::clear() {
  auto conns = std::move(conns_);
  conns_.clear();
  for (auto& c : conns) c->close();
  sweep_.cancel();
}

std::string MuxUpstreamClient::no_websocket() const {
  const bool h3 = std::string_view(protocol()) == "HTTP/3";
  return std::string("the ") + protocol() +
         " upstream does not accept WebSockets (no SETTINGS_ENABLE_CONNECT_PROTOCOL, " +
         (h3 ? "RFC 9220)" : "RFC 8441)");
}

// Whether `c` can take `d` now (kYes), never will (kNo), refuses it (kRefuses: a WebSocket and a peer
// without extended CONNECT), or may once its SETTINGS arrived (kLater).
MuxUpstreamClient::Fit MuxUpstreamClient::fit(const MuxConn& c, const MuxStreamDriver& d) {
  if (!c.usable()) return Fit::kNo;
  if (!d.websocket()) return Fit::kYes;
  if (!c.settled()) return Fit::kLater;
  return c.connect_protocol() ? Fit::kYes : Fit::kRefuses;
}

void MuxUpstreamClient::acquire(const std::shared_ptr<MuxStreamDriver>& driver) {
  bool later = false;
  for (auto& c : conns_) {
    switch (fit(*c, *driver)) {
      case Fit::kYes:
        return driver->on_attached(c);
      case Fit::kRefuses:
        return driver->on_connect_failed(no_websocket(), false);
      case Fit::kLater:
        later = true;
        break;
      case Fit::kNo:
        break;
    }
  }
  if (waiting_.size() >= limits_.max_waiting) {
    return driver->on_connect_failed(std::string("every ") + protocol() + " connection is full and " +
                                         std::to_string(limits_.max_waiting) + " requests wait",
                                     false);
  }
  waiting_.push_back(driver);
  if (later) return;  // a connection's SETTINGS will tell (serve_waiters runs after every read)
  // A connection being opened serves up to its stream cap of waiters.
  const size_t coming = opening_ * streams_per_connection_;
  if (waiting_.size() > coming && conns_.size() + opening_ < limits_.max_connections) start_opening();
}

void MuxUpstreamClient::start_opening() {
  ++opening_;
  ++opened_;
  open_connection();
}

void MuxUpstreamClient::connection_ready(std::shared_ptr<MuxConn> conn) {
  --opening_;
  add_connection(std::move(conn));
}

void MuxUpstreamClient::connection_failed(const std::string& why, bool tls_failed) {
  --opening_;
  auto waiting = std::move(waiting_);
  waiting_.clear();
  for (auto& w : waiting) {
    if (auto d = w.lock()) d->on_connect_failed(why, tls_failed);
  }
}

void MuxUpstreamClient::add_connection(std::shared_ptr<MuxConn> conn) {
  conns_.push_back(conn);
  conn->pump();  // the preface and SETTINGS
  serve_waiters();
  arm_sweep();
}

void MuxUpstreamClient::serve_waiters() {
  while (!waiting_.empty()) {
    auto d = waiting_.front().lock();
    if (!d || !d->waiting()) {
      waiting_.pop_front();
      continue;
    }
    std::shared_ptr<MuxConn> found;
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
      d->on_connect_failed(no_websocket(), false);
      continue;
    }
    if (!found) {
      if (!later && opening_ == 0 && conns_.size() < limits_.max_connections) start_opening();
      return;
    }
    waiting_.pop_front();
    d->on_attached(found);
  }
}

void MuxUpstreamClient::on_conn_closed(MuxConn* conn) {
  auto it = std::find_if(conns_.begin(), conns_.end(), [&](const auto& c) { return c.get() == conn; });
  if (it == conns_.end()) return;
  auto keep = *it;  // destroyed after this call returns
  conns_.erase(it);
  asio::post(io_, [keep] {});
  asio::post(io_, [this, alive = std::weak_ptr<int>(alive_)] {
    if (!alive.expired()) serve_waiters();
  });
}

void MuxUpstreamClient::arm_sweep() {
  if (sweep_armed_ || conns_.empty()) return;
  sweep_armed_ = true;
  sweep_.expires_after(std::max(limits_.idle_timeout / 4, std::chrono::milliseconds(10)));
  sweep_.async_wait([this, alive = std::weak_ptr<int>(alive_)](boost::system::error_code ec) {
    if (alive.expired()) return;
    sweep_armed_ = false;
    if (ec) return;
    const auto now = std::chrono::steady_clock::now();
    std::vector<std::shared_ptr<MuxConn>> idle;
    for (auto& c : conns_) {
      if (c->streams() == 0 && now - c->idle_since() >= limits_.idle_timeout) idle.push_back(c);
    }
    for (auto& c : idle) c->shutdown_and_close();
    arm_sweep();
  });
}

// --- MuxStreamDriver --------------------------------------------------------------------------------------

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

MuxStreamDriver::MuxStreamDriver(MuxUpstreamClient& client, wt::Session& session, wt::StreamId id,
                                 const tunnel::RequestHead& head, DoneFn done, ExchangeLimits limits)
    : ExchangeDriver(*this, session, id, std::make_unique<H2Codec>(client.protocol()), head, std::move(done),
                     limits),
      client_(client),
      websocket_(asks_websocket(head)) {}

MuxStreamDriver::~MuxStreamDriver() { detach(true); }

bool MuxStreamDriver::unprocessed() const { return conn_ && sid_ && conn_->refused(*sid_); }

void MuxStreamDriver::connect() {
  waiting_ = true;
  client_.acquire(shared_from_this());
}

void MuxStreamDriver::on_attached(const std::shared_ptr<MuxConn>& conn) {
  if (!waiting_) return;
  waiting_ = false;
  conn_ = conn;
  head_delivered_ = false;
  framed_ = false;
  // A multiplexed stream counts as a reused connection: a refused stream (GOAWAY, REFUSED_STREAM) is
  // replayed once, as a dead keep-alive connection is for HTTP/1.1.
  core_.on_connected(true);
}

void MuxStreamDriver::on_connect_failed(const std::string& why, bool tls) {
  if (!waiting_) return;
  waiting_ = false;
  core_.on_connect_failed(why, tls);
}

void MuxStreamDriver::report_write(std::string error) {
  writing_ = false;
  asio::post(client_.io(), [self = shared_from_this(), gen = gen_, error = std::move(error)] {
    if (gen == self->gen_) self->core_.on_written(error);
  });
}

void MuxStreamDriver::start_write(std::string_view bytes, bool fin) {
  writing_ = true;
  pending_ = bytes;
  pending_off_ = 0;
  pending_fin_ = fin;
  if (!sid_) {
    // The codec's first write starts with the request head (tunnel encoding).
    tunnel::HeadReader<tunnel::RequestHead> reader;
    tunnel::RequestHead head;
    const auto all = std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size());
    if (reader.feed(all, head) != tunnel::WireError::kNone) {
      return report_write(std::string("internal error: no request head for the ") + client_.protocol() +
                          " stream");
    }
    pending_off_ = bytes.size() - reader.take_body().size();
    const auto fields = request_fields(std::move(head), client_.tls());
    const bool end_stream = fin && pending_off_ == bytes.size() && pending_trailers_.empty();
    std::string error;
    sid_ = conn_->open(fields, end_stream, &error);
    if (!sid_) return report_write(error);
    conn_->attach(*sid_, this);
    if (end_stream) pending_fin_ = false;  // already ended by the HEADERS
  }
  progress_write();
  conn_->pump();
}

void MuxStreamDriver::progress_write() {
  if (!writing_ || !conn_ || !sid_) return;
  const auto rest = pending_.substr(pending_off_);
  std::string error;
  if (!rest.empty() || pending_fin_) {
    // With trailers the body's end is their HEADERS, not a FIN on the last DATA.
    const bool trailers = pending_fin_ && !pending_trailers_.empty();
    const size_t n = conn_->send(
        *sid_, std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(rest.data()), rest.size()),
        pending_fin_ && !trailers);
    pending_off_ += n;
    if (pending_off_ == pending_.size()) {
      if (trailers && !conn_->send_trailers(*sid_, std::exchange(pending_trailers_, {}))) {
        error = std::string("cannot send the request's trailers on the ") + client_.protocol() + " stream";
      }
      pending_fin_ = false;
    }
  }
  if (auto why = conn_->failure(*sid_); why && error.empty()) error = *why;
  if (pending_off_ < pending_.size() && error.empty()) return;  // on_stream_event resumes
  report_write(std::move(error));                               // also the success report (an empty error)
}

void MuxStreamDriver::read(size_t max) {
  reading_ = true;
  read_max_ = max;
  progress_read();
}

void MuxStreamDriver::progress_read() {
  if (!reading_ || !conn_ || !sid_) return;
  auto& c = *conn_;
  const int64_t id = *sid_;
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
    for (const auto& ih : c.take_interim(id)) {
      tunnel::ResponseHead rh;
      rh.status = ih.status;
      rh.headers = ih.headers;
      const auto bytes = tunnel::encode_response_head(rh);
      read_buf_.insert(read_buf_.end(), bytes.begin(), bytes.end());
    }
    if (auto h = c.take_head(id)) {
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
  } else if (const auto got = c.received(id); !got.empty()) {
    const size_t n = std::min(got.size(), read_max_);
    read_buf_.clear();
    tunnel::append_body_chunk(read_buf_, got.first(n));
    c.consume(id, n);
    c.pump();  // the flow-control credit
    return deliver(false, {});
  } else if (c.finished(id)) {
    read_buf_.clear();
    if (framed_ && !tunnel::append_body_end(read_buf_, c.take_trailers(id)))
      return deliver(false, "the upstream's trailer section is over the tunnel's limits");
    framed_ = false;
    return deliver(true, {});
  }
  if (auto why = c.failure(id)) {
    read_buf_.clear();
    return deliver(false, *why);
  }
}

void MuxStreamDriver::on_stream_event() {
  auto keep = shared_from_this();
  progress_write();
  progress_read();
}

void MuxStreamDriver::detach(bool cancel) {
  ++gen_;
  writing_ = reading_ = false;
  waiting_ = false;
  if (conn_ && sid_) conn_->detach(*sid_, cancel);
  conn_.reset();
  sid_.reset();
}

void MuxStreamDriver::close() { detach(true); }

void MuxStreamDriver::release() { detach(false); }

void MuxStreamDriver::shutdown_write() {
  if (!conn_ || !sid_) return;
  conn_->send(*sid_, {}, true);
  conn_->pump();
}

}  // namespace wtmesh::agent
