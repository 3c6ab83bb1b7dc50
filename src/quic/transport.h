// The contract between one QUIC connection and the application protocol above it (HTTP/3).
//
// quic::Connection implements Transport; h3::Connection implements TransportHandler. Nothing here
// names ngtcp2, GnuTLS or Asio, so h3/ can be driven in tests by any Transport.
//
// Rules of the contract:
//  - Handler callbacks are made from inside the connection's packet processing. A handler may call
//    back into Transport (write, open, reset...) from a callback; output is queued and sent when the
//    driver next flushes the connection, never re-entrantly.
//  - Receive flow control is the application's: bytes delivered by on_stream_data count against the
//    peer's stream and connection windows until the application calls consume(). That is how a relay
//    pushes back on a fast sender (ack-driven relay buffers).
//  - write() is bounded: each stream's send buffer has a cap (TransportLimits::stream_send_buffer).
//    write() returns how many bytes it took; when it took fewer than offered, on_stream_writable()
//    fires once space frees up.
//  - Peer-initiated stream credit (MAX_STREAMS) is extended by the transport itself as the peer's
//    streams close, so the number of open peer streams never exceeds the configured limit.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string_view>

namespace wtmesh::quic {

using StreamId = int64_t;

// An application error code that cannot be on the wire (varints end at 2^62 - 1): "not known".
inline constexpr uint64_t kAppErrorUnknown = uint64_t{1} << 62;

constexpr bool is_bidi(StreamId id) { return (id & 0x2) == 0; }
constexpr bool is_uni(StreamId id) { return (id & 0x2) != 0; }
constexpr bool is_client_initiated(StreamId id) { return (id & 0x1) == 0; }

class Transport {
 public:
  virtual ~Transport() = default;

  virtual bool is_server() const = 0;
  // A server before the handshake completes: what arrives now came as 0-RTT early data, which an
  // attacker can replay (RFC 8446 §8; the handshake of a replay never completes). Act only on what
  // a replay cannot harm until this turns false.
  virtual bool in_early_data() const { return false; }

  // Opens a locally initiated stream; nullopt when the peer's MAX_STREAMS limit is reached.
  virtual std::optional<StreamId> open_bidi_stream() = 0;
  virtual std::optional<StreamId> open_uni_stream() = 0;

  // Queues bytes on a stream. Returns the number accepted (0..data.size()). `fin` takes effect only
  // if every byte was accepted. Writing to an unknown or reset stream accepts nothing.
  virtual size_t write(StreamId id, std::span<const uint8_t> data, bool fin) = 0;
  // Bytes write() would accept now.
  virtual size_t send_capacity(StreamId id) const = 0;
  // Bytes written on the stream that the peer has not acknowledged yet, unsent ones included (0 for
  // an unknown or reset stream). A FIN counts as delivered with the bytes before it.
  virtual uint64_t unacked_bytes(StreamId id) const = 0;

  // RESET_STREAM (abort our sending side) and STOP_SENDING (ask the peer to stop).
  virtual void reset_stream(StreamId id, uint64_t app_error) = 0;
  virtual void stop_sending(StreamId id, uint64_t app_error) = 0;

  // Returns flow-control credit for `n` bytes of `id` that the application has consumed.
  virtual void consume(StreamId id, size_t n) = 0;

  // RFC 9221 datagrams. max_datagram_payload() is 0 when the peer did not enable them.
  // send_datagram() returns false when the datagram is dropped (too large, not enabled, queue full).
  virtual size_t max_datagram_payload() const = 0;
  virtual bool send_datagram(std::span<const uint8_t> payload) = 0;

  // The smoothed round-trip time (RFC 9002 §5.3); 0 when the transport does not measure one.
  virtual std::chrono::nanoseconds smoothed_rtt() const { return std::chrono::nanoseconds(0); }

  // Closes the connection with an application error (CONNECTION_CLOSE type 0x1d).
  virtual void close(uint64_t app_error, std::string_view reason) = 0;
};

class TransportHandler {
 public:
  virtual ~TransportHandler() = default;

  virtual void on_handshake_completed() {}
  // Server: the keys for application data are installed (the ClientHello was processed): streams may
  // be opened and written now, as 0.5-RTT data that leaves with the server's handshake flight.
  virtual void on_application_keys() {}
  // Stream bytes in order. `fin` marks the end of the peer's sending side.
  virtual void on_stream_data(StreamId id, std::span<const uint8_t> data, bool fin) = 0;
  // Peer sent RESET_STREAM: no more data will arrive on `id`.
  virtual void on_stream_reset(StreamId id, uint64_t app_error) = 0;
  // Peer sent STOP_SENDING: the transport has already reset our sending side. `app_error` is the
  // peer's code, or kAppErrorUnknown when the transport cannot tell (quic::Connection: ngtcp2 1.11
  // does not report it). Noticed when the stream next has bytes to send or waits for credit; a
  // stream with everything sent and only acks outstanding learns it when it closes.
  virtual void on_stop_sending(StreamId id, uint64_t app_error) = 0;
  // Both directions are finished; the stream id is gone and every per-stream record must be dropped.
  virtual void on_stream_closed(StreamId id) = 0;
  // Send-buffer space became available on a stream whose write() was short.
  virtual void on_stream_writable(StreamId id) = 0;
  // A locally initiated stream may now be opened (the peer raised MAX_STREAMS).
  virtual void on_streams_available() {}
  virtual void on_datagram(std::span<const uint8_t> payload) = 0;
  // The connection is gone (idle timeout, peer close, local close). No calls follow.
  virtual void on_connection_closed(uint64_t error_code, bool is_application, std::string_view reason) = 0;
};

}  // namespace wtmesh::quic
