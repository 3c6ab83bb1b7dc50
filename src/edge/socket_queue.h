// How much of what we wrote to a TCP socket the peer has not acknowledged yet (Linux SIOCOUTQ: bytes
// in the kernel's send queue, unsent or unacknowledged). A drain counts a public connection as busy
// while this is not 0: closing a socket whose send queue still holds bytes, once input it has not read
// is waiting (a client's WINDOW_UPDATE, an ACK of a PING), makes the kernel answer with a RST and
// throw those bytes away, so a response the edge had finished writing lost its tail.
#pragma once

#include <cstddef>

namespace wtmesh::edge {

// 0 when the queue is empty or the descriptor is not a connected TCP socket.
size_t unacked_output_bytes(int fd);

}  // namespace wtmesh::edge
