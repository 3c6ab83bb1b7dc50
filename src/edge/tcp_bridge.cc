#include "edge/tcp_bridge.h"

#include <boost/asio/write.hpp>

#include "tunnel/wire.h"

namespace wtmesh::edge {

namespace asio = boost::asio;
using asio::ip::tcp;

// --- SocketEnd ------------------------------------------------------------------------------------

SocketEnd::SocketEnd(tcp::socket socket, size_t read_chunk)
    : socket_(std::move(socket)), buf_(read_chunk), read_size_(read_chunk, kMaxReadChunk) {
  boost::system::error_code ec;
  socket_.set_option(tcp::no_delay(true), ec);
}

SocketEnd::~SocketEnd() {
  boost::system::error_code ec;
  socket_.close(ec);
}

void SocketEnd::read() {
  if (done_) return;
  // The last read's bytes are written by now (the bridge reads again only then): the buffer may move.
  if (buf_.size() < read_size_.get()) buf_.resize(read_size_.get());
  socket_.async_read_some(asio::buffer(buf_), [this, keep = sink_.lock()](boost::system::error_code ec, size_t n) {
    if (done_ || !keep) return;
    if (!ec) read_size_.after_read(buf_.size(), n);
    // A reset, or a socket error: the bridge aborts.
    if (ec && ec != asio::error::eof) return keep->on_end_failed(*this);
    keep->on_end_data(*this, std::span<const uint8_t>(buf_.data(), ec ? 0 : n), ec == asio::error::eof);
  });
}

void SocketEnd::write(std::span<const uint8_t> data) {
  if (done_) return;
  asio::async_write(socket_, asio::buffer(data.data(), data.size()),
                    [this, keep = sink_.lock()](boost::system::error_code ec, size_t) {
                      if (done_ || !keep) return;
                      if (ec) return keep->on_end_failed(*this);
                      keep->on_end_written(*this);
                    });
}

void SocketEnd::shutdown() {
  boost::system::error_code ec;
  socket_.shutdown(tcp::socket::shutdown_send, ec);
}

void SocketEnd::reset() {
  if (done_) return;
  done_ = true;
  boost::system::error_code ec;
  socket_.set_option(asio::socket_base::linger(true, 0), ec);  // close() sends RST
  socket_.close(ec);
}

void SocketEnd::close() {
  done_ = true;
  boost::system::error_code ec;
  socket_.close(ec);
}

// --- StreamInbox ----------------------------------------------------------------------------------

void StreamInbox::push(std::span<const uint8_t> data, bool fin) {
  in_.insert(in_.end(), data.begin(), data.end());
  in_credit_ += data.size();
  if (fin) fin_ = true;
}

void StreamInbox::deliver(BridgeEnd& from, BridgeEnd::Sink& sink) {
  if (!want_read_ || out_held_) return;
  if (!in_.empty()) {
    want_read_ = false;
    std::swap(in_, out_);
    out_credit_ = std::exchange(in_credit_, 0);
    out_held_ = true;
    sink.on_end_data(from, out_, false);
  } else if (fin_ && !eof_told_) {
    want_read_ = false;
    eof_told_ = true;
    sink.on_end_data(from, {}, true);
  }
}

size_t StreamInbox::release() {
  if (!out_held_) return 0;
  out_held_ = false;
  out_.clear();
  return std::exchange(out_credit_, 0);
}

// --- StreamEnd ------------------------------------------------------------------------------------

StreamEnd::StreamEnd(TunnelDirectory& directory, std::vector<uint8_t> prefix)
    : directory_(directory), prefix_(std::move(prefix)) {}

StreamEnd::~StreamEnd() {
  if (!done_ && ref_.valid()) {
    directory_.consume(ref_, inbox_.take_owed());
    directory_.cancel(ref_, tunnel::kStreamCancelled);
  }
}

void StreamEnd::attach(std::weak_ptr<Sink> sink) {
  sink_ = std::move(sink);
  if (failed_) return fail();
  flush();
}

void StreamEnd::refuse(std::span<const uint8_t> reply) {
  if (done_) return;
  done_ = true;
  // A new stream's window holds a reply many times over; if not, the agent sees a reset instead.
  if (directory_.write(ref_, reply, true) < reply.size()) directory_.cancel(ref_, tunnel::kStreamCancelled);
  directory_.consume(ref_, inbox_.take_owed());
  directory_.release(ref_);  // the session drops (and credits) what the agent still sends
}

void StreamEnd::on_response_data(std::span<const uint8_t> data, bool fin) {
  if (done_) return directory_.consume(ref_, data.size());
  inbox_.push(data, fin);
  deliver();
}

void StreamEnd::read() {
  inbox_.want();
  deliver();
}

void StreamEnd::deliver() {
  auto sink = sink_.lock();
  if (done_ || failed_ || !sink) return;
  inbox_.deliver(*this, *sink);
}

void StreamEnd::release() {
  if (const size_t credit = inbox_.release()) directory_.consume(ref_, credit);
}

void StreamEnd::write(std::span<const uint8_t> data) {
  pending_ = data;
  writing_ = true;
  flush();
}

void StreamEnd::flush() {
  if (done_ || failed_ || !ref_.valid() || sink_.expired()) return;
  while (prefix_pos_ < prefix_.size()) {
    const size_t n = directory_.write(ref_, std::span<const uint8_t>(prefix_).subspan(prefix_pos_), false);
    if (n == 0) return;  // on_request_writable follows
    prefix_pos_ += n;
  }
  if (writing_) {
    while (!pending_.empty()) {
      const size_t n = directory_.write(ref_, pending_, false);
      if (n == 0) return;
      pending_ = pending_.subspan(n);
    }
    writing_ = false;
    if (auto sink = sink_.lock()) sink->on_end_written(*this);
    return;
  }
  if (fin_due_ && !fin_sent_) {
    fin_sent_ = true;
    directory_.write(ref_, {}, true);
  }
}

void StreamEnd::shutdown() {
  fin_due_ = true;  // after the prefix, which may still be waiting for room
  flush();
}

void StreamEnd::reset() {
  if (done_) return;
  done_ = true;
  // Bytes arrived but not written onward still owe the connection their flow-control credit.
  directory_.consume(ref_, inbox_.take_owed());
  directory_.cancel(ref_, tunnel::kStreamCancelled);
}

void StreamEnd::close() {
  if (done_) return;
  done_ = true;
  directory_.release(ref_);
}

void StreamEnd::fail() {
  if (done_) return;
  failed_ = true;
  if (auto sink = sink_.lock()) sink->on_end_failed(*this);
}

void StreamEnd::on_stream_aborted(std::optional<uint32_t> /*code*/, std::string_view /*reason*/) { fail(); }

void StreamEnd::on_request_stopped(std::optional<uint32_t> /*code*/) { fail(); }

// --- TcpBridge ------------------------------------------------------------------------------------

TcpBridge::TcpBridge(std::unique_ptr<BridgeEnd> client, std::unique_ptr<BridgeEnd> server,
                     std::function<void(bool)> done)
    : client_(std::move(client)), server_(std::move(server)), done_fn_(std::move(done)) {
  dirs_[0] = Direction{client_.get(), server_.get()};
  dirs_[1] = Direction{server_.get(), client_.get()};
}

TcpBridge::~TcpBridge() = default;

void TcpBridge::start() {
  auto self = shared_from_this();
  client_->attach(self);
  if (done_) return;
  server_->attach(self);
  if (done_) return;
  client_->read();
  if (!done_) server_->read();
}

void TcpBridge::abort() {
  if (done_) return;
  client_->reset();
  server_->reset();
  finish(false);
}

void TcpBridge::on_end_data(BridgeEnd& from_end, std::span<const uint8_t> data, bool eof) {
  if (done_) return;
  auto keep = shared_from_this();
  Direction& d = from(from_end);
  if (!eof) return d.to->write(data);
  d.to->shutdown();
  d.ended = true;
  if (dirs_[0].ended && dirs_[1].ended) {
    client_->close();
    server_->close();
    finish(true);
  }
}

void TcpBridge::on_end_written(BridgeEnd& to_end) {
  if (done_) return;
  auto keep = shared_from_this();
  Direction& d = to(to_end);
  d.from->release();
  d.from->read();
}

void TcpBridge::on_end_failed(BridgeEnd& /*which*/) { abort(); }

void TcpBridge::finish(bool clean) {
  done_ = true;
  if (auto fn = std::move(done_fn_)) fn(clean);
}

}  // namespace wtmesh::edge
