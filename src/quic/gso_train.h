// A GSO send train: consecutive QUIC packets of one connection packed into one buffer so the driver
// can hand them to the kernel with a single sendmsg + UDP_SEGMENT (generic segmentation offload).
//
// Pure bookkeeping, no socket: the connection writes each packet straight into next(), then add()
// decides whether the packet joins the train. A train has one destination path, one ECN mark and
// equal-sized segments; only the last segment may be shorter (the kernel's GSO rule). A train is
// closed (must be sent before anything else is written) by a short packet, by the segment or byte
// cap, or by a PMTUD probe, which always travels alone so a too-large probe cannot take regular
// packets down with it.
#pragma once

#include <ngtcp2/ngtcp2.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>

namespace wtmesh::quic {

// Calls fn(datagram) for each datagram of a train or of a GRO-coalesced read: segments of
// `segment_size` bytes, the last one possibly shorter. segment_size 0 means one datagram.
template <typename Fn>
void for_each_segment(std::span<const uint8_t> data, size_t segment_size, Fn&& fn) {
  if (segment_size == 0 || segment_size >= data.size()) {
    if (!data.empty()) fn(data);
    return;
  }
  for (size_t off = 0; off < data.size(); off += segment_size) {
    fn(data.subspan(off, data.size() - off < segment_size ? data.size() - off : segment_size));
  }
}

class GsoTrain {
 public:
  // Linux has accepted 64 segments per GSO send since UDP GSO exists (UDP_MAX_SEGMENTS); 65507 is
  // the largest IPv4 UDP payload, which one GSO send may not exceed either.
  static constexpr size_t kMaxSegments = 64;
  static constexpr size_t kMaxBytes = 65507;

  enum class Added {
    kOpen,    // appended; more packets may follow
    kClosed,  // appended; send the train before writing another packet
    kSplit,   // not appended: send the train as it is (data() excludes the packet), then carry_over()
  };

  // `capacity` bounds every train (at most kMaxBytes; the buffer is allocated once).
  explicit GsoTrain(size_t capacity = kMaxBytes);
  GsoTrain(const GsoTrain&) = delete;
  GsoTrain& operator=(const GsoTrain&) = delete;

  // Starts a new, empty train. `limit`: the connection's send quantum in bytes (clamped to
  // [probe_max, capacity]). `path_max`: the largest regular packet; `probe_max` (>= path_max) the
  // largest packet the connection may write, offered only while the train still has room for it.
  void begin(size_t limit, size_t path_max, size_t probe_max);
  // Where the next packet goes: probe_max bytes when they fit, else path_max; empty once the train
  // is closed. The connection writes at most that many bytes there and reports them with add().
  std::span<uint8_t> next();
  // The packet of `len` bytes just written at next(), for `path` with ECN mark `ecn`.
  Added add(const ngtcp2_path& path, uint32_t ecn, size_t len);
  // After a kSplit train was sent: the held-back packet becomes the first of a new train, with the
  // same limits. Returns how it was added (kOpen or kClosed).
  Added carry_over();
  // Forgets everything (e.g. after the train was sent).
  void clear();

  bool empty() const { return segments_ == 0; }
  bool closed() const { return closed_; }
  // A packet was held back by kSplit and waits for carry_over().
  bool holding() const { return held_len_ != 0; }
  size_t segments() const { return segments_; }
  // The size of every segment but the last (the GSO segment size).
  size_t segment_size() const { return segment_size_; }
  std::span<const uint8_t> data() const { return {buf_.get(), used_}; }
  const ngtcp2_path& path() const { return path_.path; }
  uint32_t ecn() const { return ecn_; }
  size_t capacity() const { return capacity_; }

 private:
  Added append(size_t len);

  std::unique_ptr<uint8_t[]> buf_;
  size_t capacity_;
  size_t limit_ = 0;
  size_t path_max_ = 0;
  size_t probe_max_ = 0;
  size_t used_ = 0;
  size_t segments_ = 0;
  size_t segment_size_ = 0;
  bool closed_ = false;
  ngtcp2_path_storage path_{};
  uint32_t ecn_ = 0;
  // A packet that did not join (kSplit): it sits right after data() until carry_over().
  size_t held_len_ = 0;
  ngtcp2_path_storage held_path_{};
  uint32_t held_ecn_ = 0;
};

}  // namespace wtmesh::quic
