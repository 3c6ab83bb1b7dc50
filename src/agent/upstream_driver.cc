#include "agent/upstream_driver.h"

#include <algorithm>
#include <boost/asio/connect.hpp>
#include <boost/asio/write.hpp>
#include <cctype>

#include "agent/http1_codec.h"

namespace wtmesh::agent {

namespace asio = boost::asio;

namespace {

// "Connection refused" -> "connection refused": the message goes inside a sentence.
std::string lower_first(std::string s) {
  if (!s.empty()) s[0] = static_cast<char>(std::tolower(static_cast<unsigned char>(s[0])));
  return s;
}

}  // namespace

AsioUpstreamDriver::AsioUpstreamDriver(asio::io_context& io, wt::Session& session, wt::StreamId id,
                                       UpstreamPool& pool, tunnel::RequestHead head, DoneFn done,
                                       ExchangeLimits limits)
    : io_(io),
      pool_(pool),
      read_chunk_(limits.read_chunk),
      started_(std::chrono::steady_clock::now()),
      core_(
          session, id, *this, std::make_unique<Http1Codec>(limits.decoder), std::move(head),
          [this, done = std::move(done)](const ExchangeResult& result) {
            if (!done) return;
            ExchangeResult timed = result;
            timed.duration = std::chrono::steady_clock::now() - started_;
            done(timed);
          },
          limits) {}

AsioUpstreamDriver::~AsioUpstreamDriver() = default;

std::string AsioUpstreamDriver::name() const {
  const auto& ep = pool_.endpoint();
  return (ep.address().is_v6() ? "[" + ep.address().to_string() + "]" : ep.address().to_string()) + ":" +
         std::to_string(ep.port());
}

void AsioUpstreamDriver::connect() {
  if (auto pooled = pool_.take()) {
    socket_ = std::move(pooled);
    return core_.on_connected(true);
  }
  socket_ = std::make_unique<UpstreamPool::Socket>(io_);
  socket_->async_connect(pool_.endpoint(),
                         [self = shared_from_this(), gen = gen_](boost::system::error_code ec) {
                           if (gen != self->gen_) return;
                           if (ec) return self->core_.on_connect_failed(lower_first(ec.message()));
                           boost::system::error_code ignored;
                           self->socket_->set_option(asio::ip::tcp::no_delay(true), ignored);
                           self->core_.on_connected(false);
                         });
}

void AsioUpstreamDriver::write(std::string_view bytes) {
  asio::async_write(*socket_, asio::buffer(bytes.data(), bytes.size()),
                    [self = shared_from_this(), gen = gen_](boost::system::error_code ec, size_t) {
                      if (gen != self->gen_) return;
                      self->core_.on_written(ec ? lower_first(ec.message()) : std::string());
                    });
}

void AsioUpstreamDriver::read(size_t max) {
  max = std::min(max, read_chunk_);
  if (!read_buf_) read_buf_ = std::make_unique_for_overwrite<uint8_t[]>(read_chunk_);
  socket_->async_read_some(asio::buffer(read_buf_.get(), max),
                           [self = shared_from_this(), gen = gen_](boost::system::error_code ec, size_t n) {
                             if (gen != self->gen_) return;
                             const bool eof = ec == asio::error::eof;
                             self->core_.on_read(std::span<const uint8_t>(self->read_buf_.get(), n), eof,
                                                 ec && !eof ? lower_first(ec.message()) : std::string());
                           });
}

void AsioUpstreamDriver::close() {
  ++gen_;
  if (socket_) {
    boost::system::error_code ec;
    socket_->close(ec);
    socket_.reset();
  }
}

void AsioUpstreamDriver::release() {
  ++gen_;
  pool_.put(std::move(socket_));
}

void AsioUpstreamDriver::shutdown_write() {
  if (!socket_) return;
  boost::system::error_code ignored;
  socket_->shutdown(asio::ip::tcp::socket::shutdown_send, ignored);
}

}  // namespace wtmesh::agent
