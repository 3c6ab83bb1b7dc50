#include "quic/udp_io.h"

#include <linux/errqueue.h>
#include <netinet/in.h>
#include <netinet/udp.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>

#include <array>
#include <cerrno>
#include <cstring>

namespace wtmesh::quic {

namespace {

constexpr int kSocketBuffer = 4 << 20;  // absorbs bursts of GSO trains (see performance notes §10)
constexpr size_t kCtrlLen = 64;         // room for the UDP_GRO cmsg (and a TOS byte, later)

bool is_would_block(int err) { return err == EAGAIN || err == EWOULDBLOCK; }

}  // namespace

size_t gro_segment_size(const msghdr& msg) {
  if (msg.msg_control == nullptr || msg.msg_controllen == 0) return 0;
  // CMSG_NXTHDR takes non-const pointers; it only reads through them.
  auto& m = const_cast<msghdr&>(msg);
  for (cmsghdr* c = CMSG_FIRSTHDR(&m); c != nullptr; c = CMSG_NXTHDR(&m, c)) {
    if (c->cmsg_level == SOL_UDP && c->cmsg_type == UDP_GRO && c->cmsg_len >= CMSG_LEN(sizeof(int))) {
      int size = 0;
      std::memcpy(&size, CMSG_DATA(c), sizeof(size));
      return size > 0 ? static_cast<size_t>(size) : 0;
    }
  }
  return 0;
}

struct UdpSocketIo::RecvSlots {
  std::array<mmsghdr, kRecvBatch> msgs{};
  std::array<iovec, kRecvBatch> iovs{};
  std::array<sockaddr_storage, kRecvBatch> names{};
  union Ctrl {
    cmsghdr align;
    uint8_t bytes[kCtrlLen];
  };
  std::array<Ctrl, kRecvBatch> ctrl{};
  std::unique_ptr<uint8_t[]> bufs{new uint8_t[kRecvBatch * kRecvBufSize]};
  std::array<size_t, kRecvBatch> segment_size{};  // parsed once per read
  size_t count = 0;
};

UdpSocketIo::UdpSocketIo(int fd) : fd_(fd), rx_(std::make_unique<RecvSlots>()) {
  setsockopt(fd_, SOL_SOCKET, SO_RCVBUF, &kSocketBuffer, sizeof(kSocketBuffer));
  setsockopt(fd_, SOL_SOCKET, SO_SNDBUF, &kSocketBuffer, sizeof(kSocketBuffer));

  sockaddr_storage local{};
  socklen_t len = sizeof(local);
  getsockname(fd_, reinterpret_cast<sockaddr*>(&local), &len);
  // DF on, but ignore the route's cached PMTU: ngtcp2's PMTUD decides the size, and a datagram
  // larger than the interface MTU fails locally (EMSGSIZE) instead of being fragmented.
  const int pmtud = IP_PMTUDISC_PROBE;
  setsockopt(fd_, IPPROTO_IP, IP_MTU_DISCOVER, &pmtud, sizeof(pmtud));  // also v4-mapped on v6
  if (local.ss_family == AF_INET6) {
    const int pmtud6 = IPV6_PMTUDISC_PROBE;
    setsockopt(fd_, IPPROTO_IPV6, IPV6_MTU_DISCOVER, &pmtud6, sizeof(pmtud6));
  }

  const int on = 1;
  receive_icmp_errors(true);
  gro_ = setsockopt(fd_, SOL_UDP, UDP_GRO, &on, sizeof(on)) == 0;
  // Kernels with UDP GSO (4.18+) know the UDP_SEGMENT option; whether this route can do it is only
  // known at the first send (see send()).
  int seg = 0;
  socklen_t seglen = sizeof(seg);
  gso_ = getsockopt(fd_, SOL_UDP, UDP_SEGMENT, &seg, &seglen) == 0;

  for (size_t i = 0; i < kRecvBatch; ++i) {
    rx_->iovs[i] = {rx_->bufs.get() + i * kRecvBufSize, kRecvBufSize};
  }
}

UdpSocketIo::~UdpSocketIo() = default;

void UdpSocketIo::receive_icmp_errors(bool on) {
  // Onto the error queue (drain_errors): for a v6 socket both options, v4-mapped peers included.
  const int v = on ? 1 : 0;
  setsockopt(fd_, IPPROTO_IP, IP_RECVERR, &v, sizeof(v));
  sockaddr_storage local{};
  socklen_t len = sizeof(local);
  if (getsockname(fd_, reinterpret_cast<sockaddr*>(&local), &len) == 0 && local.ss_family == AF_INET6)
    setsockopt(fd_, IPPROTO_IPV6, IPV6_RECVERR, &v, sizeof(v));
  if (!on) drain_errors();  // what came before stays out of the next read
}

void UdpSocketIo::disable_gro() {
  const int off = 0;
  setsockopt(fd_, SOL_UDP, UDP_GRO, &off, sizeof(off));
  gro_ = false;
}

UdpSocketIo::Outcome UdpSocketIo::send_one(const sockaddr* to, socklen_t tolen, std::span<const uint8_t> data,
                                           size_t segment_size) {
  iovec iov{const_cast<uint8_t*>(data.data()), data.size()};
  msghdr msg{};
  msg.msg_name = const_cast<sockaddr*>(to);
  msg.msg_namelen = tolen;
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  union {
    cmsghdr align;
    uint8_t bytes[CMSG_SPACE(sizeof(uint16_t))];
  } ctrl{};
  const bool gso = data.size() > segment_size;
  if (gso) {
    msg.msg_control = ctrl.bytes;
    msg.msg_controllen = sizeof(ctrl.bytes);
    cmsghdr* c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = SOL_UDP;
    c->cmsg_type = UDP_SEGMENT;
    c->cmsg_len = CMSG_LEN(sizeof(uint16_t));
    const auto size = static_cast<uint16_t>(segment_size);
    std::memcpy(CMSG_DATA(c), &size, sizeof(size));
  }
  bool retried = false;
  for (;;) {
    ++stats_.send_calls;
    if (::sendmsg(fd_, &msg, MSG_DONTWAIT) >= 0) {
      if (gso) ++stats_.gso_sends;
      stats_.datagrams_out += gso ? (data.size() + segment_size - 1) / segment_size : 1;
      return Outcome::kOk;
    }
    const int err = errno;
    if (err == EINTR) continue;
    if (is_would_block(err)) {
      ++stats_.send_blocked;
      return Outcome::kBlocked;
    }
    // An ICMP error about an earlier datagram (perhaps to another peer: ECONNREFUSED, EMSGSIZE...)
    // was pending and failed this send before it left; the failure consumed it. If the error queue
    // held it, note what it said and send again, once.
    if (!retried) {
      retried = true;
      if (drain_errors()) continue;
    }
    // EIO: the device cannot segment (no checksum offload). EINVAL: the segment size does not fit
    // the route, or GSO is refused for another reason; per-datagram sends tell which.
    if (gso && (err == EIO || err == EINVAL)) return Outcome::kGsoRefused;
    spdlog::debug("quic: sendmsg ({} bytes): {}", data.size(), std::strerror(err));
    stats_.send_dropped += gso ? (data.size() + segment_size - 1) / segment_size : 1;
    return Outcome::kDropped;
  }
}

UdpSocketIo::SendResult UdpSocketIo::send_each(const sockaddr* to, socklen_t tolen,
                                               std::span<const uint8_t> data, size_t segment_size,
                                               size_t* sent, bool* any_ok) {
  size_t off = 0;
  while (off < data.size()) {
    const size_t len = std::min(segment_size, data.size() - off);
    const Outcome o = send_one(to, tolen, data.subspan(off, len), len);
    if (o == Outcome::kBlocked) {
      *sent = off;
      return SendResult::kBlocked;
    }
    if (o == Outcome::kOk) *any_ok = true;
    off += len;
  }
  *sent = data.size();
  return SendResult::kSent;
}

UdpSocketIo::SendResult UdpSocketIo::send(const sockaddr* to, socklen_t tolen, std::span<const uint8_t> data,
                                          size_t segment_size, size_t* sent) {
  *sent = 0;
  if (data.empty()) return SendResult::kSent;
  if (block_every_ != 0 && ++send_count_ % block_every_ == 0) {
    ++stats_.send_blocked;
    return SendResult::kBlocked;
  }
  if (segment_size == 0 || segment_size > data.size()) segment_size = data.size();
  bool any_ok = false;
  if (!gso_ || data.size() == segment_size) {
    // One datagram, or GSO off: a sendmsg per datagram.
    return send_each(to, tolen, data, segment_size, sent, &any_ok);
  }
  switch (send_one(to, tolen, data, segment_size)) {
    case Outcome::kOk:
    case Outcome::kDropped:
      *sent = data.size();
      return SendResult::kSent;
    case Outcome::kBlocked:
      return SendResult::kBlocked;
    case Outcome::kGsoRefused:
      break;
  }
  const SendResult r = send_each(to, tolen, data, segment_size, sent, &any_ok);
  if (any_ok) {
    // The same datagrams went out one by one: GSO itself is what the kernel refused here.
    spdlog::info("quic: UDP GSO refused by the kernel for this socket; sending datagrams one by one");
    gso_ = false;
  }
  return r;
}

size_t UdpSocketIo::read_batch() {
  RecvSlots& rx = *rx_;
  rx.count = 0;
  for (size_t i = 0; i < kRecvBatch; ++i) {
    msghdr& h = rx.msgs[i].msg_hdr;
    h.msg_name = &rx.names[i];
    h.msg_namelen = sizeof(rx.names[i]);
    h.msg_iov = &rx.iovs[i];
    h.msg_iovlen = 1;
    h.msg_control = rx.ctrl[i].bytes;
    h.msg_controllen = sizeof(rx.ctrl[i].bytes);
    h.msg_flags = 0;
    rx.msgs[i].msg_len = 0;
  }
  int n;
  bool retried = false;
  for (;;) {
    n = ::recvmmsg(fd_, rx.msgs.data(), kRecvBatch, MSG_DONTWAIT, nullptr);
    if (n >= 0) break;
    if (errno == EINTR) continue;
    // The pending error of an ICMP message comes before the data: read the error queue, then the
    // data again (once: a new ICMP meanwhile waits for the next call).
    if (!is_would_block(errno) && !retried && drain_errors()) {
      retried = true;
      continue;
    }
    break;
  }
  if (n <= 0) {
    if (n < 0 && !is_would_block(errno)) spdlog::debug("quic: recvmmsg: {}", std::strerror(errno));
    return 0;
  }
  ++stats_.recv_calls;
  rx.count = static_cast<size_t>(n);
  for (size_t i = 0; i < rx.count; ++i) {
    const size_t seg = gro_segment_size(rx.msgs[i].msg_hdr);
    const size_t len = rx.msgs[i].msg_len;
    rx.segment_size[i] = seg;
    if (seg != 0 && seg < len) {
      ++stats_.gro_reads;
      stats_.datagrams_in += (len + seg - 1) / seg;
    } else {
      ++stats_.datagrams_in;
    }
  }
  return rx.count;
}

bool UdpSocketIo::drain_errors() {
  bool any = false;
  for (int i = 0; i < 64; ++i) {  // bounded: a flood of ICMP costs at most this per call
    sockaddr_storage to{};
    uint8_t payload[64];  // the start of our datagram (unused; MSG_TRUNC is fine)
    iovec iov{payload, sizeof(payload)};
    union {
      cmsghdr align;
      uint8_t bytes[512];
    } ctrl{};
    msghdr m{};
    m.msg_name = &to;
    m.msg_namelen = sizeof(to);
    m.msg_iov = &iov;
    m.msg_iovlen = 1;
    m.msg_control = ctrl.bytes;
    m.msg_controllen = sizeof(ctrl.bytes);
    if (::recvmsg(fd_, &m, MSG_ERRQUEUE | MSG_DONTWAIT) < 0) {
      if (errno == EINTR) continue;
      break;
    }
    any = true;
    for (cmsghdr* c = CMSG_FIRSTHDR(&m); c != nullptr; c = CMSG_NXTHDR(&m, c)) {
      const bool v4 = c->cmsg_level == SOL_IP && c->cmsg_type == IP_RECVERR;
      const bool v6 = c->cmsg_level == SOL_IPV6 && c->cmsg_type == IPV6_RECVERR;
      if ((!v4 && !v6) || c->cmsg_len < CMSG_LEN(sizeof(sock_extended_err))) continue;
      sock_extended_err ee{};
      std::memcpy(&ee, CMSG_DATA(c), sizeof(ee));
      const bool port_unreachable =
          (ee.ee_origin == SO_EE_ORIGIN_ICMP && ee.ee_type == 3 && ee.ee_code == 3) ||  // RFC 792
          (ee.ee_origin == SO_EE_ORIGIN_ICMP6 && ee.ee_type == 1 && ee.ee_code == 4);  // RFC 4443
      if (port_unreachable && m.msg_namelen > 0) note_unreachable(to, m.msg_namelen);
    }
  }
  return any;
}

void UdpSocketIo::note_unreachable(const sockaddr_storage& to, socklen_t len) {
  ++stats_.port_unreachable;
  for (const UnreachableAddress& u : unreachable_) {
    if (u.length == len && std::memcmp(&u.address, &to, len) == 0) return;
  }
  if (unreachable_.size() >= kMaxUnreachable) unreachable_.erase(unreachable_.begin());
  unreachable_.push_back({to, len});
}

UdpSocketIo::Message UdpSocketIo::message(size_t i) const {
  const RecvSlots& rx = *rx_;
  const mmsghdr& m = rx.msgs[i];
  Message out{};
  out.from = reinterpret_cast<const sockaddr*>(&rx.names[i]);
  out.fromlen = m.msg_hdr.msg_namelen;
  // A truncated datagram cannot be a valid QUIC packet (or GRO batch): hand out nothing.
  if ((m.msg_hdr.msg_flags & MSG_TRUNC) == 0) {
    out.data = {rx.bufs.get() + i * kRecvBufSize, m.msg_len};
    out.segment_size = rx.segment_size[i];
  }
  return out;
}

}  // namespace wtmesh::quic
