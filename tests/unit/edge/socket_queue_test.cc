// edge/socket_queue.h over a real loopback TCP connection: bytes the peer has not acknowledged are
// counted (the receiver's window is closed: it reads nothing), and the count goes to 0 once the peer
// has read them. The drain counts such a public connection as busy (public_listener.cc).
#include "edge/socket_queue.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <thread>
#include <vector>

namespace wtmesh::edge {
namespace {

struct Fd {
  int fd = -1;
  ~Fd() {
    if (fd >= 0) ::close(fd);
  }
};

TEST(SocketQueue, CountsBytesThePeerHasNotAcknowledgedUntilItReadsThem) {
  Fd listener{::socket(AF_INET, SOCK_STREAM, 0)};
  ASSERT_GE(listener.fd, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::bind(listener.fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  ASSERT_EQ(::listen(listener.fd, 1), 0);
  socklen_t len = sizeof addr;
  ASSERT_EQ(::getsockname(listener.fd, reinterpret_cast<sockaddr*>(&addr), &len), 0);

  // The client's receive buffer is small and it reads nothing: its window closes.
  Fd client{::socket(AF_INET, SOCK_STREAM, 0)};
  const int small = 4096;
  ASSERT_EQ(::setsockopt(client.fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof small), 0);
  ASSERT_EQ(::connect(client.fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  Fd server{::accept(listener.fd, nullptr, nullptr)};
  ASSERT_GE(server.fd, 0);
  EXPECT_EQ(unacked_output_bytes(server.fd), 0u) << "nothing written yet";

  // Write what the kernel takes without blocking: more than the client's window.
  ASSERT_EQ(::fcntl(server.fd, F_SETFL, ::fcntl(server.fd, F_GETFL) | O_NONBLOCK), 0);
  std::vector<char> chunk(16 * 1024, 'x');
  size_t written = 0;
  for (int i = 0; i < 64; ++i) {
    const ssize_t n = ::send(server.fd, chunk.data(), chunk.size(), MSG_NOSIGNAL);
    if (n <= 0) break;
    written += static_cast<size_t>(n);
  }
  ASSERT_GT(written, static_cast<size_t>(small));
  std::this_thread::sleep_for(std::chrono::milliseconds(50));  // what fits the window is acknowledged
  const size_t queued = unacked_output_bytes(server.fd);
  EXPECT_GT(queued, 0u) << written << " bytes written";
  EXPECT_LE(queued, written);

  // The client reads everything: the queue empties (bounded wait).
  ASSERT_EQ(::fcntl(client.fd, F_SETFL, ::fcntl(client.fd, F_GETFL) | O_NONBLOCK), 0);
  size_t got = 0;
  std::vector<char> buf(64 * 1024);
  const auto end = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  while ((got < written || unacked_output_bytes(server.fd) > 0) && std::chrono::steady_clock::now() < end) {
    const ssize_t n = ::recv(client.fd, buf.data(), buf.size(), 0);
    if (n > 0) {
      got += static_cast<size_t>(n);
    } else {
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
  }
  EXPECT_EQ(got, written);
  EXPECT_EQ(unacked_output_bytes(server.fd), 0u);
}

TEST(SocketQueue, NotASocketCountsNothing) {
  EXPECT_EQ(unacked_output_bytes(-1), 0u);
  int p[2];
  ASSERT_EQ(::pipe(p), 0);
  EXPECT_EQ(unacked_output_bytes(p[0]), 0u);
  ::close(p[0]);
  ::close(p[1]);
}

}  // namespace
}  // namespace wtmesh::edge
