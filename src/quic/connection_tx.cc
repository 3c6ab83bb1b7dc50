// The transmit path of quic::Connection: ngtcp2 writes each packet straight into the driver's
// GsoTrain, full trains go to the TrainSink (one sendmsg each), and pacing is updated once per
// train, as ngtcp2 expects for aggregated sends.
#include <algorithm>
#include <array>
#include <cstring>

#include "quic/connection.h"

namespace wtmesh::quic {

namespace {
// Enough send-buffer chunks to fill the largest packet from any offset; more would only make
// every ngtcp2_conn_writev_stream call walk a longer list.
constexpr size_t kMaxVecs = GsoTrain::kMaxBytes / SendBuffer::kChunkSize + 2;
}  // namespace

struct Connection::Tx {
  GsoTrain& train;
  TrainSink& sink;
  Timestamp now;
  size_t trains = 0;
  bool blocked = false;    // the sink kept a train (socket full): write nothing more
  bool congested = false;  // ngtcp2 wrote nothing (congestion window or pacing), or a fatal error
  bool pkt_open = false;   // ngtcp2 said WRITE_MORE: a packet is half built at train.next()
  bool stop() const { return blocked || congested || trains >= kMaxTrainsPerWrite; }
};

void Connection::begin_train(Tx& tx) {
  const size_t path_max = ngtcp2_conn_get_path_max_tx_udp_payload_size(conn_);
  const size_t probe_max = std::max(path_max, ngtcp2_conn_get_max_tx_udp_payload_size(conn_));
  tx.train.begin(std::max(ngtcp2_conn_get_send_quantum(conn_), path_max), path_max, probe_max);
}

bool Connection::send_train(Tx& tx, bool drained) {
  if (!tx.train.empty()) {
    if (!tx.sink.send_train(tx.train)) tx.blocked = true;
    ++tx.trains;
    const bool last = drained && !tx.blocked && !tx.train.holding();
    const Timestamp before = last ? ngtcp2_conn_get_expiry(conn_) : 0;
    ngtcp2_conn_update_pkt_tx_time(conn_, tx.now);
    // After the last train of a pass that sent everything, ngtcp2's pacing deadline lies
    // microseconds ahead with nothing waiting for it: expiry() skips it (idle_pacing_at_).
    idle_pacing_at_ = 0;
    if (last) {
      if (const Timestamp after = ngtcp2_conn_get_expiry(conn_); after < before) {
        idle_pacing_at_ = after;
        after_idle_pacing_ = before;
      }
    }
  }
  if (tx.train.holding()) {
    // The packet that did not fit the last train starts the next (and may close it at once).
    if (tx.train.carry_over() == GsoTrain::Added::kClosed) return send_train(tx, drained);
  } else {
    begin_train(tx);
  }
  return !tx.blocked;
}

void Connection::flush_all(Tx& tx, bool drained) {
  // At most two rounds: a split train, then the packet it held back.
  while (!tx.train.empty() || tx.train.holding()) send_train(tx, drained);
}

bool Connection::emit(Tx& tx, const ngtcp2_path& path, const ngtcp2_pkt_info& pi, size_t len) {
  tx.pkt_open = false;
  if (tx.train.add(path, pi.ecn, len) == GsoTrain::Added::kOpen) return true;
  return send_train(tx);
}

void Connection::send_close_packet(Tx& tx) {
  close_pending_ = false;
  if (close_packet_.empty()) return;
  flush_all(tx);  // whatever was written before the close goes first
  std::span<uint8_t> buf = tx.train.next();
  if (buf.size() < close_packet_.size()) {
    begin_train(tx);
    buf = tx.train.next();
    if (buf.size() < close_packet_.size()) return;
  }
  std::memcpy(buf.data(), close_packet_.data(), close_packet_.size());
  tx.train.add(*ngtcp2_conn_get_path(conn_), 0, close_packet_.size());
  send_train(tx);
}

void Connection::fail_write(Tx& tx, ngtcp2_ssize rv) {
  ngtcp2_ccerr_set_liberr(&last_error_, static_cast<int>(rv), nullptr, 0);
  close_reason_ = ngtcp2_strerror(static_cast<int>(rv));
  tx.pkt_open = false;
  tx.congested = true;
  enter_closing(tx.now, &tx);
}

bool Connection::write_one_stream(StreamId id, Tx& tx) {
  // Writes until one packet carrying the stream's data was emitted (then the caller gives the next
  // stream its turn), the stream has nothing left, or the pass must stop. Returns true if the stream
  // should stay in the ready set.
  for (;;) {
    auto it = streams_.find(id);
    if (it == streams_.end() || it->second.shut_wr) return false;
    Stream& st = it->second;
    std::array<ngtcp2_vec, kMaxVecs> vecs{};
    const size_t nvec = st.send.unsent(vecs.data(), vecs.size());
    size_t total = 0;
    for (size_t i = 0; i < nvec; ++i) total += vecs[i].len;
    // FIN only with the last bytes: if the iovecs do not cover everything unsent, hold it back.
    const bool all_unsent = total == st.send.end_offset() - st.send.sent_offset();
    const bool fin = st.send.fin_queued() && all_unsent;
    if (total == 0 && !fin) return false;

    const std::span<uint8_t> buf = tx.train.next();
    if (buf.empty()) return true;  // only when blocked: the train could not be sent
    ngtcp2_path_storage ps;
    ngtcp2_path_storage_zero(&ps);
    ngtcp2_pkt_info pi{};
    ngtcp2_ssize accepted = -1;
    const uint32_t flags = NGTCP2_WRITE_STREAM_FLAG_MORE | (fin ? NGTCP2_WRITE_STREAM_FLAG_FIN : 0);
    ngtcp2_ssize n;
    {
      LibraryCall call(*this);
      n = ngtcp2_conn_writev_stream(conn_, &ps.path, &pi, buf.data(), buf.size(), &accepted, flags, id,
                                    vecs.data(), nvec, tx.now);
    }
    if (accepted >= 0)
      st.send.mark_sent(static_cast<size_t>(accepted), fin && static_cast<size_t>(accepted) == total);
    if (n < 0) {
      switch (n) {
        case NGTCP2_ERR_WRITE_MORE:
          // The packet has room for more: keep filling it from this stream, or the next one.
          tx.pkt_open = true;
          if (!st.send.has_unsent()) return false;
          continue;
        case NGTCP2_ERR_STREAM_DATA_BLOCKED:
          st.write_blocked = true;
          blocked_.insert(id);
          return false;
        case NGTCP2_ERR_STREAM_SHUT_WR:
          // We did not reset it (shut_wr would be set), so the peer sent STOP_SENDING and ngtcp2
          // answered with RESET_STREAM: send nothing more and tell the handler after this pass.
          peer_stopped(id, st);
          return false;
        case NGTCP2_ERR_STREAM_NOT_FOUND:
          st.shut_wr = true;
          return false;
        default:
          fail_write(tx, n);
          return false;
      }
    }
    const bool more = st.send.has_unsent();
    if (n == 0) {
      tx.pkt_open = false;
      tx.congested = true;
      return more;
    }
    emit(tx, ps.path, pi, static_cast<size_t>(n));  // a blocked send shows in tx.stop()
    return more;
  }
}

void Connection::pop_datagram() {
  datagram_bytes_ -= datagrams_.front().size();
  datagrams_.pop_front();
}

void Connection::write_datagrams(Tx& tx) {
  // Small datagrams share packets (FLAG_MORE): 200 DNS-sized ones leave in a few packets instead of
  // 200, so a burst costs a few packets of the congestion window. A packet still open at the end is
  // filled further by the streams, or finished by write_packets' last loop (tx.pkt_open).
  while (!datagrams_.empty() && (tx.pkt_open || !tx.stop())) {
    const std::span<uint8_t> buf = tx.train.next();
    if (buf.empty()) return;
    ngtcp2_path_storage ps;
    ngtcp2_path_storage_zero(&ps);
    ngtcp2_pkt_info pi{};
    int accepted = 0;
    const auto& d = datagrams_.front();
    ngtcp2_vec v{const_cast<uint8_t*>(d.data()), d.size()};
    ngtcp2_ssize n;
    {
      LibraryCall call(*this);
      n = ngtcp2_conn_writev_datagram(conn_, &ps.path, &pi, buf.data(), buf.size(), &accepted,
                                      NGTCP2_WRITE_DATAGRAM_FLAG_MORE, 0, &v, 1, tx.now);
    }
    if (n == NGTCP2_ERR_WRITE_MORE) {
      tx.pkt_open = true;  // accepted, and the packet has room for the next one
      pop_datagram();
      continue;
    }
    if (n < 0) {
      if (n == NGTCP2_ERR_INVALID_ARGUMENT || n == NGTCP2_ERR_INVALID_STATE) {
        pop_datagram();  // too large for the peer, or datagrams not negotiated: drop
        continue;
      }
      fail_write(tx, n);
      return;
    }
    if (accepted) pop_datagram();
    if (n == 0) {
      tx.pkt_open = false;
      tx.congested = true;
      return;
    }
    emit(tx, ps.path, pi, static_cast<size_t>(n));
  }
}

bool Connection::write_packets(Timestamp now, GsoTrain& train, TrainSink& sink) {
  // ngtcp2 requires time never to go backwards; a driver may pass the time of the packets it
  // answers (quic::Endpoint::service_touched), which another call may have passed already.
  now = std::max(now, last_now_);
  last_now_ = now;
  Tx tx{train, sink, now};
  begin_train(tx);
  if (state_ == State::kClosing) {
    // During the closing period the only thing we ever send is the CONNECTION_CLOSE.
    if (close_pending_) send_close_packet(tx);
    close_pending_ = false;  // read_packet re-arms it for each packet the peer still sends
    train.clear();
    return false;
  }
  if (state_ == State::kDraining || state_ == State::kClosed) {
    train.clear();
    return false;
  }
  auto writing = [this] { return state_ == State::kOpen || state_ == State::kHandshaking; };
  if (!datagrams_.empty()) write_datagrams(tx);

  // Round-robin, one packet per stream per turn: a bulk stream and a small response share the
  // congestion window packet by packet, so the small one leaves in the next packet instead of after
  // the bulk stream filled the window (which costs it a round trip on a congested path: bench/net.sh).
  // Each pass starts after the stream that wrote first last time.
  ready_order_.clear();
  for (auto it = ready_.lower_bound(rr_next_); it != ready_.end(); ++it) ready_order_.push_back(*it);
  for (auto it = ready_.begin(); it != ready_.end() && *it < rr_next_; ++it) ready_order_.push_back(*it);
  if (!ready_order_.empty()) rr_next_ = ready_order_.front() + 1;
  // Every write_one_stream call writes a packet or stops the pass (tx.stop()), so this ends.
  while (!ready_order_.empty() && !tx.stop() && writing()) {
    size_t keep = 0;
    for (size_t i = 0; i < ready_order_.size(); ++i) {
      const StreamId id = ready_order_[i];
      if (tx.stop() || !writing()) {
        ready_order_[keep++] = id;  // untouched this pass: stays ready
        continue;
      }
      if (write_one_stream(id, tx)) {
        ready_order_[keep++] = id;
      } else {
        ready_.erase(id);
      }
    }
    ready_order_.resize(keep);
  }

  // ACKs, control frames and any partly filled packet. A half-built packet is always finished
  // here: ngtcp2 would otherwise complete it later in another connection's use of the buffer.
  while (writing() && (tx.pkt_open || !tx.stop())) {
    const std::span<uint8_t> buf = tx.train.next();
    if (buf.empty()) break;
    ngtcp2_path_storage ps;
    ngtcp2_path_storage_zero(&ps);
    ngtcp2_pkt_info pi{};
    ngtcp2_ssize n;
    {
      LibraryCall call(*this);
      n = ngtcp2_conn_writev_stream(conn_, &ps.path, &pi, buf.data(), buf.size(), nullptr,
                                    NGTCP2_WRITE_STREAM_FLAG_NONE, -1, nullptr, 0, now);
    }
    if (n < 0) {
      fail_write(tx, n);
      break;
    }
    tx.pkt_open = false;
    if (n == 0) break;
    if (!emit(tx, ps.path, pi, static_cast<size_t>(n))) break;
  }
  // Drained: ngtcp2 had nothing more to write although neither the socket, the congestion window,
  // pacing nor the write budget stopped it, and no stream or datagram waits.
  flush_all(tx, !tx.stop() && ready_.empty() && datagrams_.empty());
  train.clear();
  if (silent_since_ == 0 && tx.trains > 0 && state_ == State::kOpen) {
    ngtcp2_conn_info info;
    ngtcp2_conn_get_conn_info(conn_, &info);
    if (info.bytes_in_flight > 0) silent_since_ = now;  // from now on the peer owes us an answer
  }
  const bool more = writing() && !tx.blocked && !tx.congested && tx.trains >= kMaxTrainsPerWrite;
  // After the write pass, so a handler that writes, resets or closes does not run inside it.
  deliver_events();
  apply_deferred_close();
  return more;
}

void Connection::peer_stopped(StreamId id, Stream& st) {
  st.shut_wr = true;
  st.write_blocked = false;
  st.want_writable = false;
  blocked_.erase(id);
  // The code is unknown: ngtcp2 1.11 resets the stream itself and does not report the peer's code.
  Event e{Event::Kind::kStopSending};
  e.id = id;
  e.code = kAppErrorUnknown;
  record(e);
}

void Connection::write_packets(Timestamp now, const PacketSink& sink) {
  struct PerPacket final : TrainSink {
    explicit PerPacket(const PacketSink& s) : sink(s) {}
    bool send_train(const GsoTrain& t) override {
      for_each_segment(t.data(), t.segment_size(), [&](std::span<const uint8_t> p) { sink(t.path(), p); });
      return true;
    }
    const PacketSink& sink;
  } per_packet(sink);
  GsoTrain train;
  while (write_packets(now, train, per_packet)) {
  }
}

}  // namespace wtmesh::quic
