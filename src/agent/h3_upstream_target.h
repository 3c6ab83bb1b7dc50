// Where an h3 tunnel's service listens (`--upstream h3`): its UDP address, the TLS trust and the name
// checked. Shared by the HTTP/3 request tier (agent/h3_upstream_driver.h) and the WebTransport relay
// (agent/wt_relay.h), which dial the same service.
#pragma once

#include <boost/asio/ip/udp.hpp>
#include <memory>
#include <string>

#include "quic/tls_context.h"

namespace wtmesh::agent {

struct H3UpstreamTarget {
  boost::asio::ip::udp::endpoint endpoint;
  std::shared_ptr<const quic::TlsClientContext> tls;  // required: HTTP/3 is always TLS
  std::string tls_name = "localhost";                 // checked, and sent as SNI
};

}  // namespace wtmesh::agent
