#!/usr/bin/env bash
# nat_rebinding.sh against `wtmesh edge --workers 4` (issue 15 item 3): the same transfers across NAT
# rebindings, now with four sockets on the edge's port, so most rebindings land on a worker that does
# not own the agent's connection and must hand its packets over (quic/endpoint_group.h).
# Usage: nat_rebinding_workers.sh PATH_OF_WTMESH
WTMESH_NAT_WORKERS=4 exec bash "$(dirname "$0")/nat_rebinding.sh" "$@"
