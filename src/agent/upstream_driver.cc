#include "agent/upstream_driver.h"

#include <algorithm>

#include "agent/http1_codec.h"

namespace wtmesh::agent {

namespace asio = boost::asio;

ExchangeDriver::ExchangeDriver(UpstreamTransport& transport, wt::Session& session, wt::StreamId id,
                               std::unique_ptr<UpstreamCodec> codec, tunnel::RequestHead head, DoneFn done,
                               ExchangeLimits limits)
    : started_(std::chrono::steady_clock::now()),
      core_(
          session, id, transport, std::move(codec), std::move(head),
          [this, done = std::move(done)](const ExchangeResult& result) {
            if (!done) return;
            ExchangeResult timed = result;
            timed.duration = std::chrono::steady_clock::now() - started_;
            done(timed);
          },
          limits) {}

AsioUpstreamDriver::AsioUpstreamDriver(asio::io_context& io, wt::Session& session, wt::StreamId id,
                                       UpstreamPool& pool, tunnel::RequestHead head, DoneFn done,
                                       ExchangeLimits limits)
    : ExchangeDriver(*this, session, id, std::make_unique<Http1Codec>(limits.decoder), std::move(head),
                     std::move(done), limits),
      io_(io),
      pool_(pool),
      read_chunk_(std::max(limits.read_chunk, limits.max_read_chunk)) {}

AsioUpstreamDriver::~AsioUpstreamDriver() {
  if (conn_) conn_->close();
}

std::string endpoint_text(const asio::ip::address& address, uint16_t port) {
  const std::string host = address.is_v6() ? "[" + address.to_string() + "]" : address.to_string();
  return host + ":" + std::to_string(port);
}

std::string AsioUpstreamDriver::name() const {
  return endpoint_text(pool_.endpoint().address(), pool_.endpoint().port());
}

void AsioUpstreamDriver::connect() {
  if (auto pooled = pool_.take()) {
    conn_ = std::move(pooled);
    return core_.on_connected(true);
  }
  UpstreamConnection::open(
      io_, pool_.target(),
      [self = shared_from_this(), gen = gen_](std::shared_ptr<UpstreamConnection> conn,
                                              const std::string& error, bool tls_failed) {
        if (gen != self->gen_) {
          if (conn) conn->close();
          return;
        }
        if (!conn) return self->core_.on_connect_failed(error, tls_failed);
        self->conn_ = std::move(conn);
        self->core_.on_connected(false);
      });
}

void AsioUpstreamDriver::write(std::string_view bytes) {
  conn_->write(bytes, [self = shared_from_this(), gen = gen_](const std::string& error) {
    if (gen != self->gen_) return;
    self->core_.on_written(error);
  });
}

void AsioUpstreamDriver::read(size_t max) {
  max = std::min(max, read_chunk_);
  conn_->read(max, [self = shared_from_this(), gen = gen_](std::span<const uint8_t> data, bool eof,
                                                           const std::string& error) {
    if (gen != self->gen_) return;
    self->core_.on_read(data, eof, error);
  });
}

void AsioUpstreamDriver::close() {
  ++gen_;
  if (conn_) {
    conn_->close();
    conn_.reset();
  }
}

void AsioUpstreamDriver::release() {
  ++gen_;
  if (conn_) conn_->cancel();
  pool_.put(std::move(conn_));
}

void AsioUpstreamDriver::shutdown_write() {
  if (conn_) conn_->shutdown_write();
}

}  // namespace wtmesh::agent
