// The key an edge seals its QUIC session tickets with (0-RTT, docs/protocol.md §1.2): 64 bytes
// derived from a random secret kept in the state dir (`ticket-secret`, mode 0600, made on first
// start) and from everything that bounds what a client may send in 0-RTT: the QUIC transport limits
// and our HTTP/3 SETTINGS. So edges that share a state dir (a pair behind one name, a restarted
// edge) resume each other's tickets, and an edge started with smaller limits issues tickets no
// older edge's clients hold: none of them sends 0-RTT under limits the edge no longer grants
// (RFC 9000 §7.4.1, RFC 9114 §7.2.4.2); they get a full handshake instead.
#pragma once

#include <cstdint>
#include <filesystem>
#include <vector>

#include "quic/connection.h"

namespace wtmesh::edge {

// Throws std::runtime_error naming the file when the secret cannot be read or made.
std::vector<uint8_t> edge_ticket_key(const std::filesystem::path& state_dir,
                                     const quic::TransportLimits& limits);

}  // namespace wtmesh::edge
