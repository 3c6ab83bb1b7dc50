// Linux UDP socket I/O with the offloads a QUIC endpoint wants, so quic::Endpoint only routes:
//  - send: a GsoTrain's packets leave in ONE sendmsg carrying a UDP_SEGMENT cmsg (generic
//    segmentation offload); if the kernel refuses GSO for this socket (EIO, or EINVAL where
//    per-datagram sends then work), GSO is switched off and trains go out one sendmsg per datagram.
//  - receive: UDP_GRO is enabled and reads are batched with recvmmsg; a coalesced read carries its
//    segment size in a UDP_GRO cmsg; split it back into datagrams with for_each_segment()
//    (gso_train.h).
//  - the Don't Fragment bit is set (IP_PMTUDISC_PROBE): QUIC packets must never be fragmented
//    (RFC 9000 §14), and PMTUD probes must fail rather than be fragmented.
//  - ICMP errors are received (IP_RECVERR, IPV6_RECVERR; off for a listening endpoint): a "port
//    unreachable" for a datagram we sent names an address where nothing listens any more
//    (take_unreachable()). Such an error also fails the socket's next read or send once (the
//    kernel's pending socket error): reads and sends then drain the error queue and try again, so
//    one peer's ICMP never costs another peer a datagram.
// Never blocks: a full send buffer is reported as kBlocked with how much went out.
#pragma once

#include <netinet/in.h>
#include <sys/socket.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <utility>
#include <vector>

namespace wtmesh::quic {

// The GRO segment size carried by a received message's control data; 0 when there is none (the
// message is one datagram).
size_t gro_segment_size(const msghdr& msg);

struct UdpIoStats {
  uint64_t send_calls = 0;  // sendmsg system calls
  uint64_t gso_sends = 0;   // ... of which carried more than one datagram
  uint64_t datagrams_out = 0;
  uint64_t send_blocked = 0;  // EAGAIN
  uint64_t send_dropped = 0;  // datagrams lost to other send errors (EMSGSIZE, unreachable...)
  uint64_t recv_calls = 0;    // recvmmsg system calls that returned data
  uint64_t gro_reads = 0;     // messages that carried more than one datagram
  uint64_t datagrams_in = 0;
  uint64_t port_unreachable = 0;  // ICMP / ICMPv6 port unreachable for a datagram we sent
};

// An address a datagram was sent to, as the error queue names it.
struct UnreachableAddress {
  sockaddr_storage address{};
  socklen_t length = 0;
};

class UdpSocketIo {
 public:
  // Messages per recvmmsg; each has a 64 KiB buffer (a GRO batch, or one jumbo datagram).
  static constexpr size_t kRecvBatch = 8;
  static constexpr size_t kRecvBufSize = 65536;

  enum class SendResult { kSent, kBlocked };

  // `fd`: a bound, non-blocking UDP socket that outlives this object (not owned). Sets the socket
  // options (buffers, GRO, DF) and detects GSO support; failures only disable an offload.
  explicit UdpSocketIo(int fd);
  UdpSocketIo(const UdpSocketIo&) = delete;
  UdpSocketIo& operator=(const UdpSocketIo&) = delete;
  ~UdpSocketIo();

  // Sends `data` to `to` as datagrams of `segment_size` bytes (the last may be shorter). On
  // kBlocked, *sent is the number of bytes (whole datagrams) that did go out; on kSent it is
  // data.size() (datagrams that hit a hard error count as sent: the network could lose them too).
  SendResult send(const sockaddr* to, socklen_t tolen, std::span<const uint8_t> data, size_t segment_size,
                  size_t* sent);

  // Reads without blocking, at most kRecvBatch messages; returns how many (0: nothing waiting).
  size_t read_batch();
  struct Message {
    std::span<const uint8_t> data;
    const sockaddr* from;
    socklen_t fromlen;
    size_t segment_size;  // GRO segment size; 0 = one datagram
  };
  // The i-th message of the last read_batch().
  Message message(size_t i) const;

  // Addresses whose port answered a datagram with ICMP port unreachable since the last call (at
  // most kMaxUnreachable, each once), oldest first.
  static constexpr size_t kMaxUnreachable = 16;
  std::vector<UnreachableAddress> take_unreachable() { return std::exchange(unreachable_, {}); }
  bool has_unreachable() const { return !unreachable_.empty(); }
  // On by default; a server endpoint turns it off (it acts on no ICMP about its clients, so the
  // kernel keeps ignoring them as it does for any unconnected socket).
  void receive_icmp_errors(bool on);

  bool gso_enabled() const { return gso_; }
  bool gro_enabled() const { return gro_; }
  // Tests and benchmarks: force per-datagram sends, or per-datagram reads.
  void disable_gso() { gso_ = false; }
  void disable_gro();
  // Tests: every `nth` call of send() reports kBlocked without sending (0 = never), to exercise
  // the EAGAIN path, which a loopback socket never hits on its own.
  void block_every_nth_send_for_test(uint32_t nth) { block_every_ = nth; }
  const UdpIoStats& stats() const { return stats_; }

 private:
  enum class Outcome { kOk, kBlocked, kGsoRefused, kDropped };
  Outcome send_one(const sockaddr* to, socklen_t tolen, std::span<const uint8_t> data, size_t segment_size);
  SendResult send_each(const sockaddr* to, socklen_t tolen, std::span<const uint8_t> data,
                       size_t segment_size, size_t* sent, bool* any_ok);

  // Reads the socket's error queue (bounded), noting port-unreachable addresses; this also
  // clears the pending socket error. False if there was nothing to read.
  bool drain_errors();
  void note_unreachable(const sockaddr_storage& to, socklen_t len);

  struct RecvSlots;
  int fd_;
  std::vector<UnreachableAddress> unreachable_;
  bool gso_ = false;
  bool gro_ = false;
  uint32_t block_every_ = 0;
  uint32_t send_count_ = 0;
  std::unique_ptr<RecvSlots> rx_;
  UdpIoStats stats_;
};

}  // namespace wtmesh::quic
