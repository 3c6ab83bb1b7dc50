// The HTTP/3 SETTINGS a connection needs for WebTransport (extended CONNECT on the server, H3
// datagrams, every WebTransport codepoint). Part of the HTTP/3 binding of wt/.
#pragma once

#include "h3/connection.h"

namespace wtmesh::wt {

// Use as h3::Config::local.
h3::Settings webtransport_settings(h3::Role role, h3::Settings base = {});
h3::Config webtransport_h3_config(h3::Role role, h3::Config base = {});

}  // namespace wtmesh::wt
