// The Http1Connection fixture shared by http1_connection_test.cc and http1_connection_limits_test.cc:
// a proxy over DirectoryTest's FakeDirectory and clock (directory_fixture.h), and helpers to feed the
// client's bytes and drain what it would be sent (drain() also serves route_async_test.cc).
#pragma once

#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <vector>

#include "directory_fixture.h"
#include "edge/http1_connection.h"

namespace wtmesh::edge::test {

// Takes (and acknowledges) everything `c` wants to send to the client.
inline std::string drain(Http1Connection& c) {
  std::string s;
  for (auto out = c.client_output(); !out.empty(); out = c.client_output()) {
    s += str(out);
    c.on_client_written(out.size());
  }
  return s;
}

class Http1ConnectionTest : public DirectoryTest {
 protected:
  void SetUp() override {
    DirectoryTest::SetUp();
    make();
  }
  void make(Http1Config cfg = {}) {
    if (cfg.client.ip.empty()) cfg.client = client();
    cfg.clock = clock_.fn();
    proxy_ = std::make_unique<Http1Connection>(
        dir_, cfg,
        Http1Connection::Hooks{[this] { ++wakes_; }, [this](const RequestLog& l) { logs_.push_back(l); }});
  }
  size_t feed(std::string_view s) { return proxy_->on_client_bytes(bytes(s)); }
  std::string drain() { return test::drain(*proxy_); }

  std::unique_ptr<Http1Connection> proxy_;
  int wakes_ = 0;
  std::vector<RequestLog> logs_;
};

}  // namespace wtmesh::edge::test
