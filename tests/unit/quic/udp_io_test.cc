// UdpSocketIo on real sockets: a GSO train over 127.0.0.1 arrives as the same datagrams (GRO or
// not), the per-datagram fallback sends the same bytes, and a full socket reports exactly how much
// went out (an AF_UNIX datagram socket, which, unlike loopback UDP, really fills up).
#include "quic/udp_io.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <filesystem>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "quic/gso_train.h"

namespace wtmesh::quic {
namespace {

class Fd {
 public:
  explicit Fd(int fd) : fd_(fd) {}
  ~Fd() {
    if (fd_ >= 0) ::close(fd_);
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  int get() const { return fd_; }

 private:
  int fd_;
};

int udp_socket_on_loopback(sockaddr_in* bound) {
  const int fd = ::socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0) return -1;
  socklen_t len = sizeof(*bound);
  getsockname(fd, reinterpret_cast<sockaddr*>(bound), &len);
  return fd;
}

std::vector<uint8_t> train_bytes(size_t segments, size_t seg, size_t last) {
  std::vector<uint8_t> v;
  for (size_t i = 0; i < segments; ++i) {
    const size_t len = i + 1 == segments ? last : seg;
    v.insert(v.end(), len, static_cast<uint8_t>(i + 1));
  }
  return v;
}

// Reads datagrams until `want` arrived or a second passed.
std::vector<std::vector<uint8_t>> receive(UdpSocketIo& io, int fd, size_t want) {
  std::vector<std::vector<uint8_t>> out;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(1);
  while (out.size() < want && std::chrono::steady_clock::now() < deadline) {
    pollfd p{fd, POLLIN, 0};
    ::poll(&p, 1, 50);
    const size_t n = io.read_batch();
    for (size_t i = 0; i < n; ++i) {
      const auto m = io.message(i);
      for_each_segment(m.data, m.segment_size,
                       [&](std::span<const uint8_t> d) { out.emplace_back(d.begin(), d.end()); });
    }
  }
  return out;
}

void expect_same_datagrams(const std::vector<std::vector<uint8_t>>& got, size_t segments, size_t seg,
                           size_t last) {
  ASSERT_EQ(got.size(), segments);
  for (size_t i = 0; i < segments; ++i) {
    EXPECT_EQ(got[i].size(), i + 1 == segments ? last : seg) << "datagram " << i;
    EXPECT_EQ(got[i].front(), static_cast<uint8_t>(i + 1));
    EXPECT_EQ(got[i].back(), static_cast<uint8_t>(i + 1));
  }
}

TEST(UdpSocketIo, GsoTrainArrivesAsTheSameDatagrams) {
  sockaddr_in rx_addr{}, tx_addr{};
  Fd rx(udp_socket_on_loopback(&rx_addr)), tx(udp_socket_on_loopback(&tx_addr));
  ASSERT_GE(rx.get(), 0);
  UdpSocketIo receiver(rx.get()), sender(tx.get());
  const auto data = train_bytes(10, 1200, 500);
  size_t sent = 0;
  ASSERT_EQ(sender.send(reinterpret_cast<sockaddr*>(&rx_addr), sizeof(rx_addr), data, 1200, &sent),
            UdpSocketIo::SendResult::kSent);
  EXPECT_EQ(sent, data.size());
  if (sender.gso_enabled()) {
    EXPECT_EQ(sender.stats().send_calls, 1u) << "one sendmsg for the whole train";
    EXPECT_EQ(sender.stats().gso_sends, 1u);
  }
  EXPECT_EQ(sender.stats().datagrams_out, 10u);
  expect_same_datagrams(receive(receiver, rx.get(), 10), 10, 1200, 500);
  EXPECT_EQ(receiver.stats().datagrams_in, 10u);
  if (sender.gso_enabled() && receiver.gro_enabled()) {
    EXPECT_GE(receiver.stats().gro_reads, 1u) << "loopback coalesces a GSO train for a GRO socket";
  }
}

TEST(UdpSocketIo, PerDatagramFallbackSendsTheSameBytes) {
  sockaddr_in rx_addr{}, tx_addr{};
  Fd rx(udp_socket_on_loopback(&rx_addr)), tx(udp_socket_on_loopback(&tx_addr));
  UdpSocketIo receiver(rx.get()), sender(tx.get());
  sender.disable_gso();
  const auto data = train_bytes(5, 1000, 1000);
  size_t sent = 0;
  ASSERT_EQ(sender.send(reinterpret_cast<sockaddr*>(&rx_addr), sizeof(rx_addr), data, 1000, &sent),
            UdpSocketIo::SendResult::kSent);
  EXPECT_EQ(sender.stats().send_calls, 5u);
  EXPECT_EQ(sender.stats().gso_sends, 0u);
  expect_same_datagrams(receive(receiver, rx.get(), 5), 5, 1000, 1000);
}

TEST(UdpSocketIo, JumboDatagramFitsOneReadSlot) {
  sockaddr_in rx_addr{}, tx_addr{};
  Fd rx(udp_socket_on_loopback(&rx_addr)), tx(udp_socket_on_loopback(&tx_addr));
  UdpSocketIo receiver(rx.get()), sender(tx.get());
  const std::vector<uint8_t> big(GsoTrain::kMaxBytes, 7);
  size_t sent = 0;
  ASSERT_EQ(sender.send(reinterpret_cast<sockaddr*>(&rx_addr), sizeof(rx_addr), big, big.size(), &sent),
            UdpSocketIo::SendResult::kSent);
  const auto got = receive(receiver, rx.get(), 1);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].size(), big.size());
}

TEST(UdpSocketIo, FullSocketReportsWhatWentOut) {
  // An AF_UNIX datagram receiver queues only a few datagrams, then the sender gets EAGAIN.
  const auto dir =
      std::filesystem::temp_directory_path() / ("wtmesh-udpio-" + std::to_string(std::random_device{}()));
  std::filesystem::create_directories(dir);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  const std::string path = (dir / "rx").string();
  ASSERT_LT(path.size(), sizeof(addr.sun_path));
  std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
  Fd rx(::socket(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK, 0)),
      tx(::socket(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK, 0));
  ASSERT_EQ(::bind(rx.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  UdpSocketIo sender(tx.get());
  EXPECT_FALSE(sender.gso_enabled()) << "not a UDP socket";
  const auto data = train_bytes(GsoTrain::kMaxSegments, 100, 100);
  size_t sent = 0;
  const auto r = sender.send(reinterpret_cast<sockaddr*>(&addr), sizeof(addr), data, 100, &sent);
  EXPECT_EQ(r, UdpSocketIo::SendResult::kBlocked);
  EXPECT_GT(sent, 0u);
  EXPECT_LT(sent, data.size());
  EXPECT_EQ(sent % 100, 0u) << "only whole datagrams count as sent";
  EXPECT_EQ(sender.stats().datagrams_out, sent / 100);
  EXPECT_EQ(sender.stats().send_blocked, 1u);
  std::filesystem::remove_all(dir);
}

TEST(UdpSocketIo, InjectedBlockingSendsNothing) {
  sockaddr_in rx_addr{}, tx_addr{};
  Fd rx(udp_socket_on_loopback(&rx_addr)), tx(udp_socket_on_loopback(&tx_addr));
  UdpSocketIo sender(tx.get());
  sender.block_every_nth_send_for_test(2);
  const auto data = train_bytes(3, 100, 100);
  size_t sent = 1;
  EXPECT_EQ(sender.send(reinterpret_cast<sockaddr*>(&rx_addr), sizeof(rx_addr), data, 100, &sent),
            UdpSocketIo::SendResult::kSent);
  EXPECT_EQ(sender.send(reinterpret_cast<sockaddr*>(&rx_addr), sizeof(rx_addr), data, 100, &sent),
            UdpSocketIo::SendResult::kBlocked);
  EXPECT_EQ(sent, 0u);
}

// A datagram to a closed port comes back as ICMP port unreachable: the address is reported once
// (IP_RECVERR's error queue), and the pending socket error it leaves fails neither the next send
// to another peer (it goes out) nor the next read (the data waiting behind it arrives).
TEST(UdpSocketIo, APortUnreachableIsReportedAndCostsNoDatagram) {
  sockaddr_in a_addr{}, b_addr{}, gone{};
  Fd a(udp_socket_on_loopback(&a_addr));
  Fd b(udp_socket_on_loopback(&b_addr));
  { Fd closed(udp_socket_on_loopback(&gone)); }  // bound, then closed: nothing listens there
  ASSERT_GE(a.get(), 0);
  ASSERT_GE(b.get(), 0);
  UdpSocketIo io_a(a.get());
  UdpSocketIo io_b(b.get());
  const std::vector<uint8_t> one(100, 1);
  size_t sent = 0;
  ASSERT_EQ(io_a.send(reinterpret_cast<const sockaddr*>(&gone), sizeof(gone), one, one.size(), &sent),
            UdpSocketIo::SendResult::kSent);
  // The ICMP message is the loopback's answer to that send: wait until the socket has it.
  pollfd p{a.get(), POLLERR, 0};
  ASSERT_EQ(::poll(&p, 1, 1000), 1);
  ASSERT_TRUE(p.revents & POLLERR);

  // A send to a live peer, with the error pending: it goes out.
  const std::vector<uint8_t> two(200, 2);
  ASSERT_EQ(io_a.send(reinterpret_cast<const sockaddr*>(&b_addr), sizeof(b_addr), two, two.size(), &sent),
            UdpSocketIo::SendResult::kSent);
  const auto at_b = receive(io_b, b.get(), 1);
  ASSERT_EQ(at_b.size(), 1u);
  EXPECT_EQ(at_b[0], two);

  // B answers; A reads it, and knows the closed port's address.
  ASSERT_EQ(io_b.send(reinterpret_cast<const sockaddr*>(&a_addr), sizeof(a_addr), two, two.size(), &sent),
            UdpSocketIo::SendResult::kSent);
  const auto at_a = receive(io_a, a.get(), 1);
  ASSERT_EQ(at_a.size(), 1u);
  EXPECT_EQ(io_a.stats().port_unreachable, 1u);
  EXPECT_EQ(io_a.stats().send_dropped, 0u);
  const auto unreachable = io_a.take_unreachable();
  ASSERT_EQ(unreachable.size(), 1u);
  ASSERT_EQ(unreachable[0].address.ss_family, AF_INET);
  const auto* u = reinterpret_cast<const sockaddr_in*>(&unreachable[0].address);
  EXPECT_EQ(u->sin_port, gone.sin_port);
  EXPECT_EQ(u->sin_addr.s_addr, gone.sin_addr.s_addr);
  EXPECT_TRUE(io_a.take_unreachable().empty()) << "reported once";
}

// The cap: at most kMaxUnreachable addresses wait to be taken, the oldest go. (Loopback ICMP is not
// rate limited, so each of the 70 closed ports answers; the sends themselves drain the errors
// their predecessors left, as a busy endpoint's would.)
TEST(UdpSocketIo, UnreachableAddressesWaitingAreCapped) {
  sockaddr_in a_addr{};
  Fd a(udp_socket_on_loopback(&a_addr));
  ASSERT_GE(a.get(), 0);
  UdpSocketIo io(a.get());
  std::vector<sockaddr_in> gone(70);
  {
    std::vector<std::unique_ptr<Fd>> held;
    for (auto& g : gone) held.push_back(std::make_unique<Fd>(udp_socket_on_loopback(&g)));
  }  // all closed: nothing listens on any of them
  const std::vector<uint8_t> one(10, 1);
  size_t sent = 0;
  for (const auto& g : gone) {
    ASSERT_EQ(io.send(reinterpret_cast<const sockaddr*>(&g), sizeof(g), one, one.size(), &sent),
              UdpSocketIo::SendResult::kSent);
  }
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(1);
  while (io.stats().port_unreachable < gone.size() && std::chrono::steady_clock::now() < deadline) {
    pollfd p{a.get(), POLLERR, 0};
    ::poll(&p, 1, 50);
    io.read_batch();  // nothing to read but errors
  }
  EXPECT_EQ(io.stats().port_unreachable, gone.size());
  EXPECT_EQ(io.stats().send_dropped, 0u);
  const auto kept = io.take_unreachable();
  ASSERT_EQ(kept.size(), UdpSocketIo::kMaxUnreachable);
  EXPECT_EQ(reinterpret_cast<const sockaddr_in*>(&kept.back().address)->sin_port, gone.back().sin_port);
  EXPECT_EQ(reinterpret_cast<const sockaddr_in*>(&kept.front().address)->sin_port,
            gone[gone.size() - UdpSocketIo::kMaxUnreachable].sin_port)
      << "the newest kept, the oldest dropped";
}


}  // namespace
}  // namespace wtmesh::quic
