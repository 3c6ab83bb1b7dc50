// netlab_delay: the delay of tests/net/netlab.bash's middle namespace. This kernel has no netem qdisc,
// so delay is made in user space: the router namespace routes every packet it forwards into one of two
// TUN devices (from the agent's side into A, from the edge's side into B); this program reads each
// packet, holds it for the one-way delay and writes it out of the other device, where the kernel
// routes it on to its destination. Loss and blocking stay in nftables (the rules match the veths, so
// a packet is judged once). FIFO per direction (a fixed delay keeps order); a direction's queue holds
// at most --queue packets (a router's buffer: beyond it packets are dropped and counted).
//
//   netlab_delay --tun-a NAME --tun-b NAME --delay-ms D [--queue N] [--ready FILE]
//
// Creates both TUN devices (IFF_TUN, no packet information) and, once they exist, writes FILE (so the
// script can configure them). Runs until SIGTERM/SIGINT, then prints one line of counters on stdout.
#include <fcntl.h>
#include <linux/if.h>
#include <linux/if_tun.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <string>
#include <vector>

namespace {

using Clock = std::chrono::steady_clock;

volatile std::sig_atomic_t g_stop = 0;
void on_signal(int) { g_stop = 1; }

[[noreturn]] void die(const std::string& what) {
  std::fprintf(stderr, "netlab_delay: %s\n", what.c_str());
  std::exit(1);
}

int open_tun(const std::string& name) {
  if (name.empty() || name.size() >= IFNAMSIZ) die("bad TUN name '" + name + "'");
  const int fd = ::open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) die(std::string("open /dev/net/tun: ") + std::strerror(errno));
  ifreq ifr{};
  ifr.ifr_flags = IFF_TUN | IFF_NO_PI;
  std::memcpy(ifr.ifr_name, name.data(), name.size());
  if (::ioctl(fd, TUNSETIFF, &ifr) < 0) die("TUNSETIFF " + name + ": " + std::strerror(errno));
  return fd;
}

struct Held {
  Clock::time_point due;
  std::vector<unsigned char> bytes;
};

// One direction: packets read from `in`, written to `out` once due.
struct Direction {
  int in = -1;
  int out = -1;
  std::deque<Held> queue;
  unsigned long long forwarded = 0;
  unsigned long long dropped_full = 0;
  unsigned long long write_errors = 0;
};

void read_all(Direction& d, Clock::duration delay, size_t cap) {
  std::array<unsigned char, 65536> buf{};
  for (int i = 0; i < 256; ++i) {  // bounded per wake-up: the other direction gets its turn
    const ssize_t n = ::read(d.in, buf.data(), buf.size());
    if (n <= 0) return;  // EAGAIN (or an error: the device is gone, the loop ends on a signal)
    if (d.queue.size() >= cap) {
      ++d.dropped_full;
      continue;
    }
    d.queue.push_back(Held{Clock::now() + delay, std::vector<unsigned char>(buf.data(), buf.data() + n)});
  }
}

void write_due(Direction& d, Clock::time_point now) {
  while (!d.queue.empty() && d.queue.front().due <= now) {
    const Held& h = d.queue.front();
    if (::write(d.out, h.bytes.data(), h.bytes.size()) < 0) {
      if (errno == EAGAIN) return;  // the device's queue is full: try again on the next turn
      ++d.write_errors;
    } else {
      ++d.forwarded;
    }
    d.queue.pop_front();
  }
}

}  // namespace

int main(int argc, char** argv) {
  std::string tun_a, tun_b, ready;
  long delay_ms = -1;
  size_t cap = 10000;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) die(a + " needs a value");
      return argv[++i];
    };
    if (a == "--tun-a") {
      tun_a = value();
    } else if (a == "--tun-b") {
      tun_b = value();
    } else if (a == "--delay-ms") {
      delay_ms = std::strtol(value().c_str(), nullptr, 10);
    } else if (a == "--queue") {
      cap = std::strtoul(value().c_str(), nullptr, 10);
    } else if (a == "--ready") {
      ready = value();
    } else {
      die("unknown argument " + a);
    }
  }
  if (tun_a.empty() || tun_b.empty() || delay_ms < 0 || delay_ms > 10000 || cap == 0 || cap > 1000000)
    die("usage: netlab_delay --tun-a NAME --tun-b NAME --delay-ms 0..10000 [--queue 1..1000000] [--ready "
        "FILE]");
  std::signal(SIGTERM, on_signal);
  std::signal(SIGINT, on_signal);

  const int fa = open_tun(tun_a);
  const int fb = open_tun(tun_b);
  if (!ready.empty()) {
    std::FILE* f = std::fopen(ready.c_str(), "w");
    if (!f) die("cannot write " + ready);
    std::fputs("ready\n", f);
    std::fclose(f);
  }
  const auto delay = std::chrono::milliseconds(delay_ms);
  std::array<Direction, 2> dirs;
  dirs[0].in = fa;  // agent -> edge
  dirs[0].out = fb;
  dirs[1].in = fb;  // edge -> agent
  dirs[1].out = fa;

  while (!g_stop) {
    auto now = Clock::now();
    for (auto& d : dirs) write_due(d, now);
    int timeout_ms = 1000;
    for (auto& d : dirs) {
      if (d.queue.empty()) continue;
      const auto wait = std::chrono::ceil<std::chrono::milliseconds>(d.queue.front().due - now).count();
      timeout_ms = std::min<int>(timeout_ms, static_cast<int>(std::max<long long>(wait, 0)));
    }
    std::array<pollfd, 2> fds{pollfd{fa, POLLIN, 0}, pollfd{fb, POLLIN, 0}};
    const int r = ::poll(fds.data(), fds.size(), timeout_ms);
    if (r < 0 && errno != EINTR) die(std::string("poll: ") + std::strerror(errno));
    if (r > 0) {
      if (fds[0].revents & POLLIN) read_all(dirs[0], delay, cap);
      if (fds[1].revents & POLLIN) read_all(dirs[1], delay, cap);
    }
  }
  std::printf(
      "netlab_delay: a->b forwarded %llu dropped_full %llu write_errors %llu; "
      "b->a forwarded %llu dropped_full %llu write_errors %llu\n",
      dirs[0].forwarded, dirs[0].dropped_full, dirs[0].write_errors, dirs[1].forwarded, dirs[1].dropped_full,
      dirs[1].write_errors);
  return 0;
}
