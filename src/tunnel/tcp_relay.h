// The byte bookkeeping of one TCP connection relayed onto one tunnel stream (docs/protocol.md §4.2),
// shared by the edge (edge/tcp_tunnels.cc) and the agent (agent/tcp_stream_driver.cc). Sans-I/O: its
// owner does the socket and stream calls it is told are due, and reports back.
//
//   up   (socket → stream): one read buffer; the socket is read again only once the stream took every
//        byte of the last read, and the stream's FIN goes out after the last byte before the EOF;
//   down (stream → socket): stream bytes are held until written to the socket, and only then is their
//        flow-control credit returned; shutdown(SHUT_WR) follows the last byte before the stream's FIN.
// Memory: one read buffer, plus at most the stream's receive window (the peer cannot send more
// than the credit returned). The read buffer starts at read_chunk and doubles, up to max_read_chunk,
// each time a read fills it (a bulk transfer: fewer reads, and fewer part-filled QUIC trains per
// byte; bench/README.md, "Bulk: the relay's buffers"); a connection that trickles keeps the small one.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "common/read_size.h"

namespace wtmesh::tunnel {

class TcpRelay {
 public:
  explicit TcpRelay(size_t read_chunk, size_t max_read_chunk = 0) : read_size_(read_chunk, max_read_chunk) {}

  // --- up: socket → stream ---
  // Bytes that go onto the stream before any socket byte (the edge's tcp-stream head).
  void queue_up(std::span<const uint8_t> bytes);
  // Bytes due on the stream now; then up_taken() with how many the stream took.
  std::span<const uint8_t> up_pending() const { return {up_.get() + up_pos_, up_len_ - up_pos_}; }
  void up_taken(size_t n);
  // The stream's FIN is due (EOF read, every byte before it taken); up_fin_sent() once written.
  bool up_fin_due() const { return up_eof_ && !up_fin_sent_ && up_pending().empty(); }
  void up_fin_sent() { up_fin_sent_ = true; }
  // A socket read is due: nothing pending, no EOF yet, none under way. start_read() gives its buffer.
  bool read_wanted() const { return !reading_ && !up_eof_ && up_pending().empty(); }
  // The buffer for the next read (its size: the read's, see Memory above).
  std::span<uint8_t> start_read();
  void read_done(size_t n, bool eof);

  // --- down: stream → socket ---
  // Stream bytes arrived (`credit` of them count against the stream's window; extra bytes the owner
  // puts first, like a PROXY header, count 0).
  void down_data(std::span<const uint8_t> data, bool fin, size_t credit);
  // Bytes to write to the socket now: empty when a write is under way or nothing is held.
  std::span<const uint8_t> start_write();
  // The write finished: returns the stream credit to consume().
  size_t write_done();
  // shutdown(SHUT_WR) is due (the stream's FIN came, every byte before it written); then shutdown_done().
  bool shutdown_due() const { return down_fin_ && !down_shut_ && !writing_ && out_.empty() && in_.empty(); }
  void shutdown_done() { down_shut_ = true; }
  // Stream credit held (arrived, not written): what to consume() when the relay is abandoned.
  size_t held_credit() const { return in_credit_ + out_credit_; }

  bool down_fin() const { return down_fin_; }
  bool up_finished() const { return up_fin_sent_; }
  // Both directions ended cleanly.
  bool finished() const { return up_fin_sent_ && down_shut_; }

 private:
  void reserve_up(size_t n);

  ReadSize read_size_;
  std::unique_ptr<uint8_t[]> up_;  // not zero-filled: a read overwrites it
  size_t up_cap_ = 0, up_len_ = 0, up_pos_ = 0;
  bool reading_ = false, up_eof_ = false, up_fin_sent_ = false;
  std::vector<uint8_t> in_, out_;  // arrived / being written
  size_t in_credit_ = 0, out_credit_ = 0;
  bool writing_ = false, down_fin_ = false, down_shut_ = false;
};

}  // namespace wtmesh::tunnel
