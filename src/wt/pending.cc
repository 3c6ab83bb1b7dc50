#include "wt/pending.h"

#include <algorithm>

namespace wtmesh::wt {

bool PendingBuffer::add_stream(StreamId id, StreamId session_id, bool bidi, SteadyTime now) {
  if (streams_.size() >= config_.max_buffered_streams) return false;
  Stream s;
  s.id = id;
  s.session_id = session_id;
  s.bidi = bidi;
  s.deadline = now + config_.buffered_stream_timeout;
  streams_.push_back(std::move(s));
  return true;
}

PendingBuffer::Stream* PendingBuffer::find(StreamId id) {
  auto it = std::find_if(streams_.begin(), streams_.end(), [id](const Stream& s) { return s.id == id; });
  return it == streams_.end() ? nullptr : &*it;
}

bool PendingBuffer::append(Stream& s, std::span<const uint8_t> data, bool fin) {
  if (data.size() > config_.max_buffered_stream_bytes - std::min(s.data.size(), config_.max_buffered_stream_bytes)) {
    return false;
  }
  s.data.insert(s.data.end(), data.begin(), data.end());
  s.fin = s.fin || fin;
  return true;
}

void PendingBuffer::remove(StreamId id) {
  std::erase_if(streams_, [id](const Stream& s) { return s.id == id; });
}

bool PendingBuffer::add_datagram(StreamId session_id, std::span<const uint8_t> payload, SteadyTime now) {
  if (datagrams_.size() >= config_.max_buffered_datagrams) return false;
  if (payload.size() > config_.max_buffered_datagram_bytes - datagram_bytes_) return false;
  datagrams_.push_back(Datagram{session_id, {payload.begin(), payload.end()}, now + config_.buffered_stream_timeout});
  datagram_bytes_ += payload.size();
  return true;
}

std::vector<PendingBuffer::Stream> PendingBuffer::take_streams(StreamId session_id) {
  std::vector<Stream> out;
  for (auto it = streams_.begin(); it != streams_.end();) {
    if (it->session_id == session_id) {
      out.push_back(std::move(*it));
      it = streams_.erase(it);
    } else {
      ++it;
    }
  }
  return out;
}

std::vector<PendingBuffer::Datagram> PendingBuffer::take_datagrams(StreamId session_id) {
  std::vector<Datagram> out;
  for (auto it = datagrams_.begin(); it != datagrams_.end();) {
    if (it->session_id == session_id) {
      datagram_bytes_ -= it->payload.size();
      out.push_back(std::move(*it));
      it = datagrams_.erase(it);
    } else {
      ++it;
    }
  }
  return out;
}

std::vector<PendingBuffer::Stream> PendingBuffer::expire(SteadyTime now) {
  std::vector<Stream> out;
  for (auto it = streams_.begin(); it != streams_.end();) {
    if (it->deadline <= now) {
      out.push_back(std::move(*it));
      it = streams_.erase(it);
    } else {
      ++it;
    }
  }
  for (auto it = datagrams_.begin(); it != datagrams_.end();) {
    if (it->deadline <= now) {
      datagram_bytes_ -= it->payload.size();
      it = datagrams_.erase(it);
    } else {
      ++it;
    }
  }
  return out;
}

std::optional<SteadyTime> PendingBuffer::next_deadline() const {
  std::optional<SteadyTime> best;
  for (const auto& s : streams_) {
    if (!best || s.deadline < *best) best = s.deadline;
  }
  // Datagrams are queued in arrival order with the same timeout, so the front is the earliest.
  if (!datagrams_.empty() && (!best || datagrams_.front().deadline < *best)) best = datagrams_.front().deadline;
  return best;
}

void PendingBuffer::clear() {
  streams_.clear();
  datagrams_.clear();
  datagram_bytes_ = 0;
}

}  // namespace wtmesh::wt
