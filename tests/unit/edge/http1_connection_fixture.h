// The Http1Connection fixture shared by http1_connection_test.cc and http1_connection_limits_test.cc: a proxy over a
// FakeDirectory with one route (app.localhost), a settable clock, and helpers to feed the client's
// bytes, drain what it would be sent, and answer as the agent.
#pragma once

#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <vector>

#include "edge/http1_connection.h"
#include "fakes.h"

namespace wtmesh::edge::test {

class Http1ConnectionTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_.add_route("app.localhost");
    make();
  }
  void make(Http1Config cfg = {}) {
    if (cfg.client.ip.empty()) cfg.client = {"192.0.2.1", true};
    cfg.clock = clock_.fn();
    proxy_ = std::make_unique<Http1Connection>(
        dir_, cfg,
        Http1Connection::Hooks{[this] { ++wakes_; }, [this](const RequestLog& l) { logs_.push_back(l); }});
  }
  size_t feed(std::string_view s) { return proxy_->on_client_bytes(bytes(s)); }
  // Takes (and acknowledges) everything the proxy wants to send to the client.
  std::string drain() {
    std::string s;
    for (auto out = proxy_->client_output(); !out.empty(); out = proxy_->client_output()) {
      s += str(out);
      proxy_->on_client_written(out.size());
    }
    return s;
  }
  FakeDirectory::Stream& stream() { return dir_.streams[dir_.last]; }
  void agent_answers(const tunnel::ResponseHead& head, std::string_view body, bool fin) {
    auto b = tunnel::encode_response_head(head);
    b.insert(b.end(), body.begin(), body.end());
    stream().events->on_response_data(b, fin);
  }
  static tunnel::ResponseHead head(int status, std::optional<uint64_t> len, bool body = true,
                                   tunnel::HeaderPairs h = {}) {
    tunnel::ResponseHead r;
    r.status = status;
    r.has_body = body;
    r.content_length = len;
    r.headers = std::move(h);
    return r;
  }

  FakeClock clock_;
  FakeDirectory dir_;
  std::unique_ptr<Http1Connection> proxy_;
  int wakes_ = 0;
  std::vector<RequestLog> logs_;
};

}  // namespace wtmesh::edge::test
