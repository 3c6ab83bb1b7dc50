// One relayed TCP connection at the edge, between two ends that are each a TCP socket or a tunnel
// stream (docs/protocol.md §4.2, §4.3):
//   - a public TCP tunnel:      client socket           ↔ the serving agent's tcp-stream (0x04);
//   - a mesh connect:           an agent's connect-stream (0x05) ↔ the serving agent's tcp-stream;
//   - a connect to an edge route: an agent's connect-stream ↔ a socket the edge opened itself.
// The bridge moves bytes both ways with the same rules whatever the ends are:
//   - bytes: an end is read again only once the other end took every byte of the last read, and a
//     stream's bytes are consumed (their flow-control credit returned) only then, so memory per
//     connection is bounded by one socket read buffer per socket end plus the streams' windows, and a
//     slow side slows the other end to end;
//   - half-close: an end's EOF (FIN) becomes the other end's FIN (shutdown(SHUT_WR)) after the last
//     byte; the bridge is done cleanly when both directions ended;
//   - resets: an RST, a RESET_STREAM/STOP_SENDING, a write error or a session that ended on either
//     end resets the other (RST, or RESET_STREAM + STOP_SENDING with kStreamCancelled).
#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <utility>
#include <vector>

#include "common/read_size.h"
#include "edge/tunnel_directory.h"

namespace wtmesh::edge {

// One side of a TcpBridge. Calls come from the bridge only; answers go to its Sink, possibly inline.
class BridgeEnd {
 public:
  class Sink {
   public:
    virtual ~Sink() = default;
    // The answer to read(): bytes (valid until release()) or, with eof, the end's FIN/EOF.
    virtual void on_end_data(BridgeEnd& from, std::span<const uint8_t> data, bool eof) = 0;
    // The answer to write(): every byte was taken.
    virtual void on_end_written(BridgeEnd& to) = 0;
    // The end was reset or failed: the bridge aborts.
    virtual void on_end_failed(BridgeEnd& which) = 0;
  };

  virtual ~BridgeEnd() = default;
  // The bridge starts using the end; an end that failed before says so now.
  virtual void attach(std::weak_ptr<Sink> sink) = 0;
  virtual void read() = 0;
  // The bytes of the last on_end_data went onward (streams return their credit now).
  virtual void release() = 0;
  // `data` stays valid until on_end_written.
  virtual void write(std::span<const uint8_t> data) = 0;
  // FIN / shutdown(SHUT_WR), after the last write completed.
  virtual void shutdown() = 0;
  // Aborts: RST, or RESET_STREAM + STOP_SENDING. No more answers.
  virtual void reset() = 0;
  // Both directions ended cleanly: lets go. No more answers.
  virtual void close() = 0;
};

// The receive side of an end backed by a flow-controlled stream (StreamEnd, WtStreamEnd): bytes the
// stream delivered, handed to the bridge a batch at a time. Their credit is owed to the stream until
// the bridge releases the batch (so a slow other side slows the sender, and the buffer stays within
// the stream's receive window); the owner returns it.
class StreamInbox {
 public:
  void push(std::span<const uint8_t> data, bool fin);
  void want() { want_read_ = true; }
  bool wanted() const { return want_read_; }
  // Hands the next batch, or the FIN once every byte went, to `sink` if a read is pending and
  // nothing is held.
  void deliver(BridgeEnd& from, BridgeEnd::Sink& sink);
  // The bridge is done with the held batch: the credit to return now (0 when nothing was held).
  size_t release();
  // Every byte's credit not yet returned (the end is going away); zero afterwards.
  size_t take_owed() { return std::exchange(in_credit_, 0) + std::exchange(out_credit_, 0); }

 private:
  std::vector<uint8_t> in_, out_;  // arrived / handed to the bridge
  size_t in_credit_ = 0, out_credit_ = 0;
  bool fin_ = false, eof_told_ = false, want_read_ = false, out_held_ = false;
};

// A TCP socket (connected) as an end.
class SocketEnd final : public BridgeEnd {
 public:
  // Reads start at read_chunk bytes and double, up to kMaxReadChunk, while they fill the buffer (a
  // bulk upload: fewer reads and part-filled QUIC trains per byte; tunnel/tcp_relay.h says the same).
  SocketEnd(boost::asio::ip::tcp::socket socket, size_t read_chunk);
  ~SocketEnd() override;
  static constexpr size_t kMaxReadChunk = 256 * 1024;

  void attach(std::weak_ptr<Sink> sink) override { sink_ = std::move(sink); }
  void read() override;
  void release() override {}
  void write(std::span<const uint8_t> data) override;
  void shutdown() override;
  void reset() override;
  void close() override;

 private:
  std::weak_ptr<Sink> sink_;
  boost::asio::ip::tcp::socket socket_;
  std::vector<uint8_t> buf_;  // resized to read_size_ before each read
  ReadSize read_size_;
  bool done_ = false;
};

// A tunnel stream (a StreamRef of a TunnelDirectory) as an end: its events are RequestStreamEvents,
// so it is what open_request() (or a ConnectBroker) is given. `prefix` goes onto the stream before
// any byte of the other end (a tcp-stream head, a connect reply).
class StreamEnd final : public BridgeEnd, public RequestStreamEvents {
 public:
  explicit StreamEnd(TunnelDirectory& directory, std::vector<uint8_t> prefix = {});
  ~StreamEnd() override;

  StreamRef* ref() { return &ref_; }
  void set_prefix(std::vector<uint8_t> prefix) { prefix_ = std::move(prefix); }
  // Answers the stream with `reply` and FIN and lets go of it (a connect refusal): its bytes are
  // dropped from then on.
  void refuse(std::span<const uint8_t> reply);
  bool failed() const { return failed_; }

  // --- BridgeEnd ---
  void attach(std::weak_ptr<Sink> sink) override;
  void read() override;
  void release() override;
  void write(std::span<const uint8_t> data) override;
  void shutdown() override;
  void reset() override;
  void close() override;

  // --- RequestStreamEvents ---
  void on_response_data(std::span<const uint8_t> data, bool fin) override;
  void on_request_writable() override { flush(); }
  void on_stream_aborted(std::optional<uint32_t> code, std::string_view reason) override;
  void on_request_stopped(std::optional<uint32_t> code) override;

 private:
  void deliver();
  void flush();
  void fail();

  TunnelDirectory& directory_;
  StreamRef ref_;
  std::weak_ptr<Sink> sink_;
  std::vector<uint8_t> prefix_;
  size_t prefix_pos_ = 0;
  std::span<const uint8_t> pending_;  // the bridge's bytes being written
  bool writing_ = false;
  StreamInbox inbox_;
  bool fin_due_ = false, fin_sent_ = false;
  bool failed_ = false, done_ = false;
};

class TcpBridge final : public BridgeEnd::Sink, public std::enable_shared_from_this<TcpBridge> {
 public:
  // `done` runs once: true when both directions ended cleanly, false on a reset.
  TcpBridge(std::unique_ptr<BridgeEnd> client, std::unique_ptr<BridgeEnd> server,
            std::function<void(bool clean)> done);
  ~TcpBridge() override;

  void start();
  // Resets both ends (unless done already).
  void abort();
  bool done() const { return done_; }

  void on_end_data(BridgeEnd& from, std::span<const uint8_t> data, bool eof) override;
  void on_end_written(BridgeEnd& to) override;
  void on_end_failed(BridgeEnd& which) override;

 private:
  struct Direction {
    BridgeEnd* from = nullptr;
    BridgeEnd* to = nullptr;
    bool ended = false;  // EOF read, FIN/shutdown passed on
  };
  Direction& from(BridgeEnd& e) { return &e == dirs_[0].from ? dirs_[0] : dirs_[1]; }
  Direction& to(BridgeEnd& e) { return &e == dirs_[0].to ? dirs_[0] : dirs_[1]; }
  void finish(bool clean);

  std::unique_ptr<BridgeEnd> client_, server_;
  std::function<void(bool)> done_fn_;
  Direction dirs_[2];
  bool done_ = false;
};

}  // namespace wtmesh::edge
