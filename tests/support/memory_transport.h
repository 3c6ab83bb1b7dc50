// Test support: a deterministic in-memory pair of quic::Transport implementations (client + server),
// so h3/ and wt/ can be tested without sockets or crypto (like quinn's test `Pair`).
//
//   wtmesh::testing::MemoryPair pair;
//   pair.set_handler(MemoryPair::kClient, &client_conn);  // any quic::TransportHandler
//   pair.set_handler(MemoryPair::kServer, &server_conn);
//   ... pair.client().open_bidi_stream(), write() ...
//   pair.run();  // delivers everything queued, both ways, until quiet
//
// Model (kept deliberately simple):
//  - Output is queued per direction in one FIFO (stream data, resets, STOP_SENDING, credit,
//    MAX_STREAMS, datagrams, close) and delivered only by run(), never re-entrantly.
//  - Send-buffer cap per stream = bytes written and not yet consume()d by the peer. Space frees when
//    the peer's consume() credit arrives; then on_stream_writable fires if a write was short.
//  - Stream ids by role; each side grants its peer max_bidi_streams / max_uni_streams concurrent
//    streams; a closed peer stream returns one credit (MAX_STREAMS) and on_streams_available fires.
//  - A send side is done when its FIN is delivered or it is reset; a receive side when FIN or
//    RESET_STREAM is delivered. on_stream_closed fires when both are done, and the id is forgotten.
//  - STOP_SENDING makes the peer transport reset its sending side with the same code, then tells the
//    peer's handler (as the quic::Transport contract says).
//  - on_handshake_completed is delivered to each side's handler at the first run() after it is set.
#pragma once

#include <algorithm>
#include <cstdint>
#include <deque>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "quic/transport.h"

namespace wtmesh::testing {

struct MemoryPairConfig {
  size_t stream_send_buffer = 64 * 1024;  // per stream: written but not yet consumed by the peer
  uint64_t max_bidi_streams = 100;        // concurrent streams each side lets its peer open
  uint64_t max_uni_streams = 100;
  size_t max_datagram_payload = 1200;  // 0 = datagrams disabled
  size_t max_queued_datagrams = 64;
  size_t max_delivery_chunk = 0;  // split stream data into deliveries of at most this size (0 = whole)
};

class MemoryPair {
 public:
  enum Side { kClient = 0, kServer = 1 };
  using StreamId = quic::StreamId;

  explicit MemoryPair(MemoryPairConfig config = {})
      : config_(config), ends_{Endpoint(this, kClient), Endpoint(this, kServer)} {}
  MemoryPair(const MemoryPair&) = delete;
  MemoryPair& operator=(const MemoryPair&) = delete;

  quic::Transport& client() { return ends_[kClient]; }
  quic::Transport& server() { return ends_[kServer]; }
  quic::Transport& side(Side s) { return ends_[s]; }
  void set_handler(Side s, quic::TransportHandler* handler) { ends_[s].handler_ = handler; }
  MemoryPairConfig& config() { return config_; }

  // Delivers queued events alternately from each side until nothing is left. Returns false if
  // `max_steps` was hit first (a livelock in the code under test).
  bool run(size_t max_steps = 1'000'000) {
    for (auto& e : ends_) {
      if (!e.handshake_done_ && e.handler_ != nullptr && !e.closed_) {
        e.handshake_done_ = true;
        e.handler_->on_handshake_completed();
      }
    }
    for (size_t step = 0; step < max_steps; ++step) {
      const bool client_progress = flush_local(ends_[kClient]);
      const bool server_progress = flush_local(ends_[kServer]);
      bool progress = client_progress || server_progress;
      for (int s = 0; s < 2; ++s) {
        if (!ends_[s].out_.empty()) {
          deliver(ends_[s], ends_[1 - s]);
          progress = true;
        }
      }
      if (!progress) return true;
    }
    return false;
  }

  // Introspection for leak checks.
  size_t stream_count(Side s) const { return ends_[s].streams_.size(); }
  bool is_closed(Side s) const { return ends_[s].closed_; }

 private:
  enum class Kind { kData, kReset, kStopSending, kCredit, kMaxStreams, kDatagram, kClose };
  struct Event {
    Kind kind;
    StreamId id = 0;
    std::vector<uint8_t> bytes;
    bool fin = false;
    uint64_t code = 0;  // error code, credit amount, or bidi flag for kMaxStreams
    std::string reason;
  };
  struct Stream {
    bool send_done = false;
    bool recv_done = false;
    bool fin_queued = false;
    bool stop_sent = false;
    bool blocked = false;  // a write was short: on_stream_writable when credit returns
    bool close_pending = false;
    size_t outstanding = 0;  // written, not yet credited by the peer
    size_t unconsumed = 0;   // delivered to our handler, not yet consume()d
  };

  class Endpoint final : public quic::Transport {
   public:
    Endpoint(MemoryPair* pair, Side side)
        : pair_(pair), side_(side), limit_{pair->config_.max_bidi_streams, pair->config_.max_uni_streams} {}

    bool is_server() const override { return side_ == kServer; }
    std::optional<StreamId> open_bidi_stream() override { return open(0); }
    std::optional<StreamId> open_uni_stream() override { return open(1); }

    size_t write(StreamId id, std::span<const uint8_t> data, bool fin) override {
      Stream* s = find(id);
      if (closed_ || s == nullptr || s->send_done || s->fin_queued) return 0;
      const size_t cap =
          pair_->config_.stream_send_buffer - std::min(s->outstanding, pair_->config_.stream_send_buffer);
      const size_t n = std::min(cap, data.size());
      if (n < data.size()) s->blocked = true;
      const bool all = n == data.size();
      if (n == 0 && !(all && fin)) return 0;
      if (!out_.empty() && out_.back().kind == Kind::kData && out_.back().id == id) {
        out_.back().bytes.insert(out_.back().bytes.end(), data.begin(), data.begin() + n);
        out_.back().fin = fin && all;
      } else {
        out_.push_back(Event{Kind::kData, id, {data.begin(), data.begin() + n}, fin && all});
      }
      s->outstanding += n;
      s->fin_queued = fin && all;
      return n;
    }
    size_t send_capacity(StreamId id) const override {
      auto it = streams_.find(id);
      if (closed_ || it == streams_.end() || it->second.send_done || it->second.fin_queued) return 0;
      return pair_->config_.stream_send_buffer -
             std::min(it->second.outstanding, pair_->config_.stream_send_buffer);
    }
    // "Acknowledged" here is delivered by run(): the bytes still queued for the peer.
    uint64_t unacked_bytes(StreamId id) const override {
      uint64_t n = 0;
      for (const Event& e : out_) {
        if (e.kind == Kind::kData && e.id == id) n += e.bytes.size() + (e.fin ? 1 : 0);
      }
      return n;
    }
    void reset_stream(StreamId id, uint64_t app_error) override {
      Stream* s = find(id);
      if (closed_ || s == nullptr || s->send_done) return;
      reset_send_side(id, *s, app_error);
    }
    void stop_sending(StreamId id, uint64_t app_error) override {
      Stream* s = find(id);
      if (closed_ || s == nullptr || s->recv_done || s->stop_sent) return;
      s->stop_sent = true;
      out_.push_back(Event{Kind::kStopSending, id, {}, false, app_error});
    }
    void consume(StreamId id, size_t n) override {
      Stream* s = find(id);
      if (closed_ || s == nullptr) return;
      n = std::min(n, s->unconsumed);
      s->unconsumed -= n;
      if (n > 0) out_.push_back(Event{Kind::kCredit, id, {}, false, n});
    }
    size_t max_datagram_payload() const override { return closed_ ? 0 : pair_->config_.max_datagram_payload; }
    bool send_datagram(std::span<const uint8_t> payload) override {
      if (closed_ || payload.size() > pair_->config_.max_datagram_payload ||
          pair_->config_.max_datagram_payload == 0 ||
          queued_datagrams_ >= pair_->config_.max_queued_datagrams) {
        return false;
      }
      ++queued_datagrams_;
      out_.push_back(Event{Kind::kDatagram, 0, {payload.begin(), payload.end()}});
      return true;
    }
    void close(uint64_t app_error, std::string_view reason) override {
      if (closed_) return;
      closed_ = true;
      out_.push_back(Event{Kind::kClose, 0, {}, false, app_error, std::string(reason)});
      local_close_ = Event{Kind::kClose, 0, {}, false, app_error, std::string(reason)};
    }

   private:
    friend class MemoryPair;

    bool local(StreamId id) const { return quic::is_client_initiated(id) == (side_ == kClient); }
    Stream* find(StreamId id) {
      auto it = streams_.find(id);
      return it == streams_.end() ? nullptr : &it->second;
    }
    // A peer stream is created by its first data or reset; unknown local ids are closed ones.
    Stream* find_or_create(StreamId id) {
      if (Stream* s = find(id)) return s;
      if (local(id)) return nullptr;
      Stream& s = streams_[id];
      s.send_done = quic::is_uni(id);
      return &s;
    }
    std::optional<StreamId> open(int uni) {
      if (closed_) return std::nullopt;
      if (opened_[uni] >= limit_[uni]) {
        streams_blocked_ = true;
        return std::nullopt;
      }
      const StreamId id =
          static_cast<StreamId>(opened_[uni]++ * 4 + (uni ? 2 : 0) + (side_ == kServer ? 1 : 0));
      streams_[id].recv_done = uni != 0;
      return id;
    }
    void reset_send_side(StreamId id, Stream& s, uint64_t code) {
      std::erase_if(out_, [id](const Event& e) { return e.kind == Kind::kData && e.id == id; });
      out_.push_back(Event{Kind::kReset, id, {}, false, code});
      s.send_done = s.fin_queued = true;
      maybe_close(id, s);
    }
    void maybe_close(StreamId id, Stream& s) {
      if (s.send_done && s.recv_done && !s.close_pending) {
        s.close_pending = true;
        pending_close_.push_back(id);
      }
    }

    MemoryPair* pair_;
    Side side_;
    quic::TransportHandler* handler_ = nullptr;
    std::map<StreamId, Stream> streams_;
    uint64_t opened_[2] = {0, 0};  // [bidi, uni] streams we opened
    uint64_t limit_[2];            // cumulative limit granted by the peer
    bool streams_blocked_ = false;
    std::deque<Event> out_;
    std::vector<StreamId> pending_close_;
    std::optional<Event> local_close_;
    size_t queued_datagrams_ = 0;
    bool closed_ = false;
    bool dead_ = false;  // on_connection_closed delivered: no more callbacks
    bool handshake_done_ = false;
  };

  quic::TransportHandler* handler(Endpoint& e) { return e.dead_ ? nullptr : e.handler_; }

  bool flush_local(Endpoint& e) {
    bool progress = false;
    for (size_t i = 0; i < e.pending_close_.size(); ++i) {
      const StreamId id = e.pending_close_[i];
      e.streams_.erase(id);
      if (!e.local(id) && !e.closed_)
        e.out_.push_back(Event{Kind::kMaxStreams, id, {}, false, quic::is_bidi(id)});
      if (auto* h = handler(e)) h->on_stream_closed(id);
      progress = true;
    }
    e.pending_close_.clear();
    if (e.local_close_) {
      Event ev = std::move(*e.local_close_);
      e.local_close_.reset();
      if (auto* h = handler(e)) h->on_connection_closed(ev.code, true, ev.reason);
      e.dead_ = true;
      progress = true;
    }
    return progress;
  }

  void deliver(Endpoint& from, Endpoint& to) {
    Event ev = std::move(from.out_.front());
    from.out_.pop_front();
    if (ev.kind == Kind::kDatagram) --from.queued_datagrams_;
    if (to.closed_) return;
    switch (ev.kind) {
      case Kind::kData: {
        const size_t chunk = config_.max_delivery_chunk;
        if (chunk != 0 && ev.bytes.size() > chunk) {  // leave the rest at the front for the next step
          Event rest{Kind::kData, ev.id, {ev.bytes.begin() + chunk, ev.bytes.end()}, ev.fin};
          from.out_.push_front(std::move(rest));
          ev.bytes.resize(chunk);
          ev.fin = false;
        }
        Stream* s = to.find_or_create(ev.id);
        if (s == nullptr || s->recv_done) return;
        if (ev.fin) s->recv_done = true;
        if (s->stop_sent) {  // discarded; return the credit so the sender is not stuck
          if (!ev.bytes.empty()) to.out_.push_back(Event{Kind::kCredit, ev.id, {}, false, ev.bytes.size()});
        } else {
          s->unconsumed += ev.bytes.size();
          if (auto* h = handler(to)) h->on_stream_data(ev.id, ev.bytes, ev.fin);
        }
        if (ev.fin) {
          if (Stream* fs = from.find(ev.id)) {
            fs->send_done = true;
            from.maybe_close(ev.id, *fs);
          }
        }
        if (Stream* s2 = to.find(ev.id)) to.maybe_close(ev.id, *s2);
        break;
      }
      case Kind::kReset: {
        Stream* s = to.find_or_create(ev.id);
        if (s == nullptr || s->recv_done) return;
        s->recv_done = true;
        s->unconsumed = 0;
        if (auto* h = handler(to)) h->on_stream_reset(ev.id, ev.code);
        if (Stream* s2 = to.find(ev.id)) to.maybe_close(ev.id, *s2);
        break;
      }
      case Kind::kStopSending: {
        Stream* s = to.find(ev.id);
        if (s == nullptr || s->send_done) return;
        to.reset_send_side(ev.id, *s, ev.code);
        if (auto* h = handler(to)) h->on_stop_sending(ev.id, ev.code);
        break;
      }
      case Kind::kCredit: {
        Stream* s = to.find(ev.id);
        if (s == nullptr) return;
        s->outstanding -= std::min<size_t>(ev.code, s->outstanding);
        if (s->blocked && !s->send_done && !s->fin_queued && s->outstanding < config_.stream_send_buffer) {
          s->blocked = false;
          if (auto* h = handler(to)) h->on_stream_writable(ev.id);
        }
        break;
      }
      case Kind::kMaxStreams:
        ++to.limit_[ev.code ? 0 : 1];
        if (to.streams_blocked_) {
          to.streams_blocked_ = false;
          if (auto* h = handler(to)) h->on_streams_available();
        }
        break;
      case Kind::kDatagram:
        if (auto* h = handler(to)) h->on_datagram(ev.bytes);
        break;
      case Kind::kClose:
        to.closed_ = true;
        to.out_.clear();
        to.local_close_.reset();
        if (auto* h = handler(to)) h->on_connection_closed(ev.code, true, ev.reason);
        to.dead_ = true;
        break;
    }
  }

  MemoryPairConfig config_;
  Endpoint ends_[2];
};

}  // namespace wtmesh::testing
