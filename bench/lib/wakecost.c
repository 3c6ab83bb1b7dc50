// bench/lib/wakecost.c: the floor of what a wake-up costs on this machine. A child process blocks in
// epoll_wait on a loopback UDP socket and echoes each datagram (epoll_wait, recvfrom, sendto: the
// least a proxy does per wake-up); the parent sends one 1200-byte datagram at RATE per second for
// SECS seconds and reads each echo. Prints the child's CPU (schedstat run time) per wake-up.
// Used by bench/wakecost.sh; compiled there with the system's cc. Every loop is bounded.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static long long run_time_ns(pid_t pid) {
  char path[64];
  snprintf(path, sizeof path, "/proc/%d/schedstat", (int)pid);
  FILE* f = fopen(path, "r");
  long long ns = -1;
  if (f) {
    if (fscanf(f, "%lld", &ns) != 1) ns = -1;
    fclose(f);
  }
  return ns;
}

static void echo_forever(int sock) {
  int ep = epoll_create1(0);
  struct epoll_event ev = {.events = EPOLLIN};
  if (ep < 0 || epoll_ctl(ep, EPOLL_CTL_ADD, sock, &ev) != 0) _exit(1);
  char buf[2048];
  for (;;) {  // ends when the parent kills it
    if (epoll_wait(ep, &ev, 1, -1) < 1) continue;
    struct sockaddr_in from;
    socklen_t fromlen = sizeof from;
    ssize_t n = recvfrom(sock, buf, sizeof buf, 0, (struct sockaddr*)&from, &fromlen);
    if (n > 0) sendto(sock, buf, (size_t)n, 0, (struct sockaddr*)&from, fromlen);
  }
}

int main(int argc, char** argv) {
  if (argc != 3) {
    fprintf(stderr, "usage: wakecost RATE SECS\n");
    return 2;
  }
  const int rate = atoi(argv[1]), secs = atoi(argv[2]);
  if (rate < 1 || rate > 100000 || secs < 1 || secs > 600) {
    fprintf(stderr, "wakecost: RATE 1-100000, SECS 1-600\n");
    return 2;
  }
  int echo = socket(AF_INET, SOCK_DGRAM, 0);
  struct sockaddr_in addr = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  socklen_t len = sizeof addr;
  if (echo < 0 || bind(echo, (struct sockaddr*)&addr, sizeof addr) != 0 ||
      getsockname(echo, (struct sockaddr*)&addr, &len) != 0) {
    perror("wakecost: echo socket");
    return 1;
  }
  pid_t child = fork();
  if (child < 0) return 1;
  if (child == 0) echo_forever(echo);
  int me = socket(AF_INET, SOCK_DGRAM, 0);
  struct timeval tv = {.tv_sec = 1};
  setsockopt(me, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  char buf[1200];
  memset(buf, 'x', sizeof buf);
  usleep(100000);
  const long long before = run_time_ns(child);
  const long n = (long)rate * secs;
  long echoed = 0;
  struct timespec next;
  clock_gettime(CLOCK_MONOTONIC, &next);
  for (long i = 0; i < n; ++i) {
    sendto(me, buf, sizeof buf, 0, (struct sockaddr*)&addr, sizeof addr);
    if (recv(me, buf, sizeof buf, 0) > 0) ++echoed;
    next.tv_nsec += 1000000000L / rate;
    while (next.tv_nsec >= 1000000000L) {
      next.tv_nsec -= 1000000000L;
      ++next.tv_sec;
    }
    clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &next, NULL);
  }
  const long long after = run_time_ns(child);
  kill(child, SIGKILL);
  waitpid(child, NULL, 0);
  if (before < 0 || after < 0 || echoed == 0) {
    fprintf(stderr, "wakecost: no measurement (echoed %ld)\n", echoed);
    return 1;
  }
  printf("rate=%d wakeups=%ld cpu_us_per_wakeup=%.1f\n", rate, echoed, (after - before) / 1000.0 / echoed);
  return 0;
}
