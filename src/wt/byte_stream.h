// The byte stream a WebTransport-over-HTTP/2 connection sits on: an ordered, reliable, bidirectional
// stream of bytes with bounded buffers (TLS over TCP today, anything stream-shaped later). Like
// session.h it names nothing from QUIC, HTTP/3, Asio or GnuTLS, and it is sans-I/O: a ByteStream is
// an object in memory with two faces.
//
//   the H2 binding (the fallback issue)      uses ByteStream, is its ByteStreamHandler  (plaintext)
//   agent::TlsClientStream                   implements ByteStream and ByteStreamWire
//   agent::TcpByteStreamDriver (Asio)        uses ByteStreamWire, is its listener       (ciphertext)
//
// The application face carries plaintext (for HTTP/2: frames after the connection preface); the wire
// face carries what goes on the socket (for TLS: records). A driver owns the socket and only moves
// bytes between the socket and the wire face; the stream itself never blocks, reads a clock or does
// I/O, so tests connect two of them through memory.
//
// Contract:
//  - Reading is pulled, announced by a push: on_readable() says readable() grew or the peer finished;
//    the application looks at readable() and returns what it has disposed of with consume(n). Unconsumed
//    bytes stay in the stream (readable() shows them again, but on_readable() is not repeated for them:
//    a reader that leaves bytes behind comes back for them itself), and the stream reads nothing more from
//    the wire once its plaintext buffer is full, so a slow application stops the peer through TCP's window
//    instead of growing memory. This is session.h's credit rule with the buffer kept on the stream's side
//    (a frame parser can wait for a whole frame header without copying).
//  - Writing is bounded: write() takes at most write_capacity() bytes and returns how many it took
//    (0 before the stream is open, after shutdown and after a failure); when it took fewer than
//    offered, on_writable() follows once the driver has drained the wire output below its cap.
//  - shutdown() ends our direction cleanly (TLS: close_notify, then the driver half-closes TCP); the
//    peer's bytes keep arriving until peer_finished(). close() abandons the stream at once: nothing
//    more is read or written and the driver closes the socket.
//  - on_closed(error) is the last call: after a failure (error says why, e.g. "certificate not trusted
//    for edge.example.com: ..."), after close(), or once both directions finished and the wire output
//    was drained (error ""). Handlers may call any method from a callback but must not destroy the
//    stream there; the owner destroys it after on_closed returned (e.g. from a posted task).
//  - Ownership: the application owns the stream (and the driver that moves its bytes); handlers are
//    not owned and must outlive the stream or be unset with set_handler(nullptr).
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>

namespace wtmesh::wt {

class ByteStreamHandler {
 public:
  virtual ~ByteStreamHandler() = default;
  // The stream is open for writes (TLS: handshake done; the stream says what was negotiated).
  virtual void on_open() {}
  // readable() grew, or the peer finished (peer_finished()).
  virtual void on_readable() = 0;
  // write_capacity() became non-zero after a write() that took less than offered.
  virtual void on_writable() {}
  // The stream is over; no calls follow. `error` is "" for a clean end.
  virtual void on_closed(std::string_view error) = 0;
};

class ByteStream {
 public:
  enum class State {
    kOpening,  // e.g. the TLS handshake
    kOpen,     // reads and writes (one direction may have finished)
    kClosed,   // both directions finished cleanly, or close() was called
    kFailed,   // error() says why
  };

  virtual ~ByteStream() = default;

  virtual void set_handler(ByteStreamHandler* handler) = 0;
  virtual State state() const = 0;
  virtual const std::string& error() const = 0;

  // --- reading ---
  virtual std::span<const uint8_t> readable() const = 0;
  virtual void consume(size_t n) = 0;
  // The peer ended its direction (TLS close_notify or TCP EOF) and readable() is empty.
  virtual bool peer_finished() const = 0;

  // --- writing ---
  virtual size_t write(std::span<const uint8_t> data) = 0;
  virtual size_t write_capacity() const = 0;
  // Ends our direction after the bytes already written; later writes take nothing.
  virtual void shutdown() = 0;
  // Abandons the stream now (no close_notify); on_closed("") follows unless it already ended.
  virtual void close() = 0;
};

// Told by a ByteStreamWire that wire_output() grew, wire_space() grew or the stream ended: the driver
// writes, resumes reading or closes the socket. Called from inside the stream's methods; the driver
// only starts asynchronous operations there.
class ByteStreamWireListener {
 public:
  virtual ~ByteStreamWireListener() = default;
  virtual void on_wire_ready() = 0;
};

// The socket face of a byte stream, for its driver.
class ByteStreamWire {
 public:
  virtual ~ByteStreamWire() = default;

  virtual void set_wire_listener(ByteStreamWireListener* listener) = 0;
  // Bytes read from the socket; returns how many were taken (at most wire_space()).
  virtual size_t wire_feed(std::span<const uint8_t> bytes) = 0;
  virtual size_t wire_space() const = 0;
  // The socket reached EOF: nothing more will be fed.
  virtual void wire_eof() = 0;
  // The socket failed (or could not connect): the stream fails with `why`.
  virtual void wire_failed(std::string_view why) = 0;
  // Bytes to write to the socket, and how many were written.
  virtual std::span<const uint8_t> wire_output() const = 0;
  virtual void wire_consume(size_t n) = 0;
  // Once wire_output() is empty: half-close the socket (our direction ended cleanly) ...
  virtual bool wire_write_done() const = 0;
  // ... or close it (the stream is over: closed or failed).
  virtual bool wire_finished() const = 0;
};

}  // namespace wtmesh::wt
