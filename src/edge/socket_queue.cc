#include "edge/socket_queue.h"

#include <linux/sockios.h>
#include <sys/ioctl.h>

namespace wtmesh::edge {

size_t unacked_output_bytes(int fd) {
  int n = 0;
  if (fd < 0 || ::ioctl(fd, SIOCOUTQ, &n) != 0 || n < 0) return 0;
  return static_cast<size_t>(n);
}

}  // namespace wtmesh::edge
