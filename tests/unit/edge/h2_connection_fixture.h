// The H2Connection fixture shared by h2_connection_test.cc and h2_connection_websocket_test.cc: the
// codec over DirectoryTest's FakeDirectory and clock (directory_fixture.h), nghttp2's client session
// (h2_test_client.h) and pump(), which moves bytes both ways until both sides are quiet.
#pragma once

#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <vector>

#include "directory_fixture.h"
#include "edge/h2_connection.h"
#include "h2_test_client.h"

namespace wtmesh::edge::test {

class H2ConnectionTest : public DirectoryTest {
 protected:
  void SetUp() override {
    DirectoryTest::SetUp();
    make();
  }
  void make(H2Config cfg = {}) {
    cfg.exchange.client = client();
    cfg.exchange.clock = clock_.fn();
    conn_ = std::make_unique<H2Connection>(
        dir_, cfg,
        ConnectionHooks{[this] { ++wakes_; }, [this](const RequestLog& l) { logs_.push_back(l); }});
  }
  // Moves bytes both ways until neither side has anything more to say (bounded).
  void pump() {
    for (int i = 0; i < 100; ++i) {
      bool moved = false;
      pending_in_ += client_.output();
      if (!pending_in_.empty() && !conn_->finished()) {
        const size_t n = conn_->on_client_bytes(bytes(pending_in_));
        pending_in_.erase(0, n);
        moved = moved || n > 0;
      }
      if (client_reads_) {
        for (auto out = conn_->client_output(); !out.empty(); out = conn_->client_output()) {
          ASSERT_TRUE(client_.input(out));
          conn_->on_client_written(out.size());
          moved = true;
        }
      }
      if (!moved) return;
    }
    FAIL() << "pump did not settle";
  }
  std::unique_ptr<H2Connection> conn_;
  H2TestClient client_;
  std::string pending_in_;
  bool client_reads_ = true;
  int wakes_ = 0;
  std::vector<RequestLog> logs_;
};

}  // namespace wtmesh::edge::test
