// `wtmesh edge` once its options are parsed: runs the edge alone on this thread, or as
// EdgeWorkers (--workers N), prints where it listens, and handles SIGTERM/SIGINT (a drain, then a
// second signal closes at once).
#pragma once

#include <string>

#include "edge/drain_plan.h"
#include "edge/edge_server.h"

namespace wtmesh::cli {

// What the printout names beyond the edge's own endpoints.
struct EdgePrintout {
  bool echo = false;
  std::string domain, public_host, tcp_ports, udp_ports;
};

// Returns the exit status once the edge stopped; throws std::runtime_error as EdgeServer does.
int serve_edge(const edge::EdgeOptions& opts, unsigned workers, const edge::DrainPlan::Options& drain,
               const EdgePrintout& print);

}  // namespace wtmesh::cli
