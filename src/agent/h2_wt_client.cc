#include "agent/h2_wt_client.h"

#include <nghttp2/nghttp2.h>
#include <spdlog/spdlog.h>

#include <boost/asio/post.hpp>
#include <cstring>
#include <utility>

#include "agent/h2_nv.h"
#include "agent/tcp_byte_stream_driver.h"
#include "agent/tls_client_stream.h"
#include "quic/tls_context.h"

namespace wtmesh::agent {
namespace {

constexpr int32_t kStreamWindow = 1 << 20;
constexpr int32_t kConnectionWindow = 4 << 20;

}  // namespace

// nghttp2's callbacks: they record and return.
struct H2WtClient::Callbacks {
  static H2WtClient& self(void* u) { return *static_cast<H2WtClient*>(u); }
  static int on_header(nghttp2_session*, const nghttp2_frame* f, const uint8_t* name, size_t namelen,
                       const uint8_t* value, size_t valuelen, uint8_t, void* u) {
    auto& c = self(u);
    if (f->hd.stream_id != c.stream_id_ || c.head_done_) return 0;
    const std::string n(reinterpret_cast<const char*>(name), namelen);
    const std::string v(reinterpret_cast<const char*>(value), valuelen);
    if (n == ":status") {
      c.status_ = std::atoi(v.c_str());
      c.response_headers_.clear();
    } else if (!n.empty() && n[0] != ':' && c.response_headers_.size() < 64) {
      c.response_headers_.emplace_back(n, v);
    }
    return 0;
  }
  static int on_frame_recv(nghttp2_session*, const nghttp2_frame* f, void* u) {
    auto& c = self(u);
    if (f->hd.type == NGHTTP2_SETTINGS && (f->hd.flags & NGHTTP2_FLAG_ACK) == 0) {
      for (size_t i = 0; i < f->settings.niv; ++i) {
        const auto& e = f->settings.iv[i];
        if (e.settings_id == NGHTTP2_SETTINGS_ENABLE_CONNECT_PROTOCOL) c.connect_protocol_ = e.value;
        if (e.settings_id <= 0xffff) c.server_wt_.apply(static_cast<uint16_t>(e.settings_id), e.value);
      }
      c.settings_received_ = true;
      return 0;
    }
    if (f->hd.stream_id != c.stream_id_) return 0;
    if (f->hd.type == NGHTTP2_HEADERS && c.status_ >= 200) c.head_done_ = true;
    if ((f->hd.type == NGHTTP2_HEADERS || f->hd.type == NGHTTP2_DATA) &&
        (f->hd.flags & NGHTTP2_FLAG_END_STREAM))
      c.end_stream_ = true;
    return 0;
  }
  static int on_data_chunk(nghttp2_session*, uint8_t, int32_t id, const uint8_t* data, size_t len, void* u) {
    auto& c = self(u);
    if (id == c.stream_id_) c.data_in_.insert(c.data_in_.end(), data, data + len);
    return 0;
  }
  static int on_stream_close(nghttp2_session*, int32_t id, uint32_t code, void* u) {
    auto& c = self(u);
    if (id == c.stream_id_) c.stream_closed_ = code;
    return 0;
  }
  static int on_error(nghttp2_session*, int, const char* msg, size_t len, void* u) {
    auto& c = self(u);
    if (c.h2_error_.empty()) c.h2_error_.assign(msg, len);
    return 0;
  }
};

H2WtClient::H2WtClient(boost::asio::io_context& io, std::shared_ptr<const quic::TlsClientContext> tls,
                       std::chrono::milliseconds open_timeout, wt::H2SessionConfig config)
    : io_(io), tls_(std::move(tls)), open_timeout_(open_timeout), config_(std::move(config)) {
  nghttp2_session_callbacks* cbs = nullptr;
  nghttp2_session_callbacks_new(&cbs);
  nghttp2_session_callbacks_set_on_header_callback(cbs, &Callbacks::on_header);
  nghttp2_session_callbacks_set_on_frame_recv_callback(cbs, &Callbacks::on_frame_recv);
  nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cbs, &Callbacks::on_data_chunk);
  nghttp2_session_callbacks_set_on_stream_close_callback(cbs, &Callbacks::on_stream_close);
  nghttp2_session_callbacks_set_error_callback2(cbs, &Callbacks::on_error);
  nghttp2_session_client_new(&h2_, cbs, this);
  nghttp2_session_callbacks_del(cbs);
  config_.local.wt_enabled = 0;  // a server's setting (§3.1)
  std::vector<nghttp2_settings_entry> settings{{NGHTTP2_SETTINGS_ENABLE_PUSH, 0},
                                               {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, kStreamWindow}};
  for (const auto& [id, value] : config_.local.entries()) settings.push_back({id, value});
  nghttp2_submit_settings(h2_, NGHTTP2_FLAG_NONE, settings.data(), settings.size());
  nghttp2_session_set_local_window_size(h2_, NGHTTP2_FLAG_NONE, 0, kConnectionWindow);
}

H2WtClient::~H2WtClient() {
  driver_.reset();  // first: it moves the stream's bytes
  if (session_ && session_->state() != wt::H2Session::State::kClosed)
    session_->on_connect_reset(NGHTTP2_CANCEL);
  session_.reset();
  if (stream_) stream_->set_handler(nullptr);
  stream_.reset();
  nghttp2_session_del(h2_);
}

bool H2WtClient::dial(const EdgeUrl& edge, std::string* error, const boost::asio::ip::tcp::endpoint* remote) {
  edge_ = edge;
  TlsClientOptions options;
  options.host = edge.host;
  stream_ = std::make_unique<TlsClientStream>(tls_, options);
  if (stream_->state() == wt::ByteStream::State::kFailed) {
    if (error) *error = stream_->error();
    return false;
  }
  stream_->set_handler(this);
  TcpDriverOptions d;
  d.open_timeout = open_timeout_;
  driver_ = std::make_unique<TcpByteStreamDriver>(io_, *stream_, d);
  if (remote != nullptr) {
    driver_->connect(*remote);
  } else {
    driver_->connect(edge.host, edge.port);
  }
  return true;
}

std::string H2WtClient::tls_summary() const {
  if (!stream_ || stream_->version().empty()) return {};
  return stream_->version() + " " + stream_->alpn();
}

wt::Session* H2WtClient::open_session(const std::string& path, const wt::HeaderPairs& extra,
                                      wt::SessionHandler* handler, std::string* error) {
  if (session_) {
    if (error) *error = "one WebTransport session per HTTP/2 connection";
    return nullptr;
  }
  if (closed_ || !edge_) {
    if (error) *error = closed_ ? close_reason_ : std::string("not dialled");
    return nullptr;
  }
  wt::SessionInfo info;
  info.authority = edge_->authority();
  info.path = path;
  info.headers = extra;
  info.transport = wt::Transport::kHttp2;
  session_ = std::make_unique<wt::H2Session>(wt::Role::kClient, config_, std::move(info), handler);
  session_->set_output_listener(this);
  path_ = path;
  extra_ = extra;
  post_pump();
  return session_.get();
}

void H2WtClient::close(std::string_view reason) {
  if (closed_) return;
  if (close_reason_.empty()) close_reason_ = std::string(reason);
  if (session_ && session_->state() == wt::H2Session::State::kOpen) session_->close(0, reason);
  nghttp2_submit_goaway(h2_, NGHTTP2_FLAG_NONE, nghttp2_session_get_last_proc_stream_id(h2_),
                        NGHTTP2_NO_ERROR, nullptr, 0);
  closing_ = true;
  pump();
}

void H2WtClient::on_closed(std::string_view error) {
  // Inside the stream's call: the session hears it from the next pump.
  if (close_reason_.empty()) close_reason_ = error.empty() ? "connection closed" : std::string(error);
  closed_ = true;
  post_pump();
}

void H2WtClient::post_pump() {
  if (pump_posted_) return;
  pump_posted_ = true;
  boost::asio::post(io_, [this, alive = std::weak_ptr<int>(alive_)] {
    if (alive.expired()) return;
    pump_posted_ = false;
    pump();
  });
}

void H2WtClient::fail(std::string why) {
  if (close_reason_.empty()) close_reason_ = std::move(why);
  closed_ = true;
  if (stream_) stream_->close();
}

void H2WtClient::submit_connect() {
  if (connect_protocol_ != 1 || server_wt_.wt_enabled != 1) {
    fail(server_wt_.wt_enabled > 1
             ? "the edge sent SETTINGS_WT_ENABLED > 1 (PROTOCOL_ERROR)"
             : "the edge does not offer WebTransport over HTTP/2 (no " +
                   std::string(connect_protocol_ != 1 ? "SETTINGS_ENABLE_CONNECT_PROTOCOL"
                                                      : "SETTINGS_WT_ENABLED") +
                   ")");
    return;
  }
  session_->set_peer_settings(server_wt_);
  const std::string method = "CONNECT", protocol = "webtransport", scheme = "https";
  const std::string authority = edge_->authority();
  static const std::string kMethod = ":method", kProtocol = ":protocol", kScheme = ":scheme",
                           kAuthority = ":authority", kPath = ":path";
  std::vector<nghttp2_nv> h{nv(kMethod, method), nv(kProtocol, protocol), nv(kScheme, scheme),
                            nv(kAuthority, authority), nv(kPath, path_)};
  for (const auto& [n, v] : extra_) h.push_back(nv(n, v));
  nghttp2_data_provider provider{};
  provider.source.ptr = this;
  provider.read_callback = [](nghttp2_session*, int32_t, uint8_t* buf, size_t length, uint32_t* flags,
                              nghttp2_data_source* source, void*) -> ssize_t {
    return static_cast<H2WtClient*>(source->ptr)->read_output(buf, length, flags);
  };
  stream_id_ = nghttp2_submit_request(h2_, nullptr, h.data(), h.size(), &provider, nullptr);
  if (stream_id_ < 0) fail(std::string("cannot send the CONNECT: ") + nghttp2_strerror(stream_id_));
}

ssize_t H2WtClient::read_output(uint8_t* buf, size_t length, uint32_t* flags) {
  const auto out = session_->output();
  if (taken_ < out.size()) {
    const size_t k = std::min(length, out.size() - taken_);
    std::memcpy(buf, out.data() + taken_, k);
    taken_ += k;
    return static_cast<ssize_t>(k);
  }
  if (taken_ == 0 && session_->output_fin()) {
    *flags |= NGHTTP2_DATA_FLAG_EOF;
    return 0;
  }
  deferred_ = true;
  return NGHTTP2_ERR_DEFERRED;
}

void H2WtClient::pump() {
  if (in_pump_) return;
  in_pump_ = true;
  for (int round = 0; round < 64; ++round) {
    const size_t taken_before = taken_;
    step();
    if (taken_ == taken_before && taken_ == 0) break;  // nothing copied: nothing more to consume
  }
  in_pump_ = false;
  if (on_change_ && (settings_received_ != reported_handshake_ || closed_ != reported_closed_)) {
    reported_handshake_ = settings_received_;
    reported_closed_ = closed_;
    boost::asio::post(io_, [fn = on_change_, alive = std::weak_ptr<int>(alive_)] {
      if (!alive.expired()) fn();
    });
  }
}

void H2WtClient::step() {
  // Received bytes to nghttp2.
  if (stream_ && stream_->state() == wt::ByteStream::State::kOpen && !closed_) {
    for (auto in = stream_->readable(); !in.empty(); in = stream_->readable()) {
      const ssize_t n = nghttp2_session_mem_recv(h2_, in.data(), in.size());
      if (n < 0) {
        fail(std::string("HTTP/2 error from the edge: ") +
             (h2_error_.empty() ? nghttp2_strerror(static_cast<int>(n)) : h2_error_));
        break;
      }
      stream_->consume(static_cast<size_t>(n));
    }
  }
  // What the callbacks recorded, to the session.
  if (session_) {
    if (taken_ > 0) session_->consume_output(std::exchange(taken_, 0));
    if (stream_id_ < 0 && settings_received_ && !closed_) submit_connect();
    if (head_done_ && !head_delivered_) {
      head_delivered_ = true;
      session_->on_response(wt::ConnectResponse{status_, response_headers_});
    }
    if (!data_in_.empty()) {
      const std::vector<uint8_t> in = std::exchange(data_in_, {});
      session_->receive(in, false);
      if (stream_id_ > 0) nghttp2_session_consume(h2_, stream_id_, in.size());
    }
    if (end_stream_ && head_delivered_ && !end_delivered_) {
      end_delivered_ = true;
      session_->receive({}, true);
    }
    if ((stream_closed_ || closed_) && session_->state() != wt::H2Session::State::kClosed) {
      if (!head_delivered_ && status_ >= 200) {
        head_delivered_ = true;
        session_->on_response(wt::ConnectResponse{status_, response_headers_});
      }
      if (session_->state() != wt::H2Session::State::kClosed)
        session_->on_connect_reset(stream_closed_.value_or(NGHTTP2_CANCEL));
    }
    if (const auto code = session_->output_reset(); code && stream_id_ > 0 && !stream_closed_) {
      nghttp2_submit_rst_stream(h2_, NGHTTP2_FLAG_NONE, stream_id_, *code);
      stream_closed_ = *code;
    }
    if (deferred_ && (session_->output_size() > 0 || session_->output_fin())) {
      deferred_ = false;
      nghttp2_session_resume_data(h2_, stream_id_);
    }
  }
  // Frames to the byte stream, while it takes them.
  if (!stream_ || stream_->state() != wt::ByteStream::State::kOpen || closed_) return;
  for (;;) {
    if (!pending_out_.empty()) {
      const size_t n = stream_->write(pending_out_);
      pending_out_.erase(pending_out_.begin(), pending_out_.begin() + static_cast<ptrdiff_t>(n));
      if (!pending_out_.empty()) return;  // on_writable follows
    }
    const uint8_t* data = nullptr;
    const ssize_t n = nghttp2_session_mem_send(h2_, &data);
    if (n < 0) {
      fail(std::string("HTTP/2 error: ") + nghttp2_strerror(static_cast<int>(n)));
      return;
    }
    if (n == 0) break;
    pending_out_.assign(data, data + n);
  }
  if (closing_ || (!nghttp2_session_want_read(h2_) && !nghttp2_session_want_write(h2_))) stream_->shutdown();
}

}  // namespace wtmesh::agent
