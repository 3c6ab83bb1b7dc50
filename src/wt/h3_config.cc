#include "wt/h3_config.h"

namespace wtmesh::wt {

h3::Settings webtransport_settings(h3::Role role, h3::Settings base) {
  // RFC 9220: only the server advertises extended CONNECT; Chromium's draft-02 client infers it from
  // the WebTransport setting anyway.
  if (role == h3::Role::kServer) base.enable_connect_protocol = true;
  base.h3_datagram = true;
  base.webtransport = true;
  if (base.wt_max_sessions == 0) base.wt_max_sessions = 1;
  return base;
}

h3::Config webtransport_h3_config(h3::Role role, h3::Config base) {
  base.local = webtransport_settings(role, base.local);
  return base;
}

}  // namespace wtmesh::wt
