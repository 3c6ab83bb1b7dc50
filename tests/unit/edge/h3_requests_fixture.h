// The fixture of the public HTTP/3 tests: our h3 client against the edge's H3Server + H3Requests
// over a MemoryPair, the agent played by a FakeDirectory.
#pragma once

#include <gtest/gtest.h>

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "../../support/memory_transport.h"
#include "directory_fixture.h"
#include "edge/h3_requests.h"
#include "h3/error_codes.h"
#include "wt/h3_config.h"
#include "wt/h3_server.h"

namespace wtmesh::edge::test {

using testing::MemoryPair;
using testing::MemoryPairConfig;
using StreamId = h3::StreamId;

// What the client saw on each request stream (bytes consumed at once).
struct ClientView : h3::NullHandler {
  struct Result {
    h3::HeaderList head;  // the final response head
    h3::HeaderList trailers;
    std::string body;
    bool fin = false;
    std::optional<uint64_t> reset;
    bool closed = false;
    std::string field(std::string_view n) const {
      const std::string* v = h3::find_header(head, n);
      return v ? *v : "";
    }
    int status() const { return field(":status").empty() ? 0 : std::stoi(field(":status")); }
  };
  h3::Connection* conn = nullptr;
  std::map<StreamId, Result> r;
  std::vector<uint64_t> goaways;

  void on_headers(StreamId id, h3::HeaderList h, bool fin) override {
    if (!r[id].head.empty() && !h3::find_header(h, ":status")) {
      r[id].trailers = std::move(h);  // a trailing HEADERS (h3::Connection skips 1xx heads)
    } else {
      r[id].head = std::move(h);
    }
    r[id].fin = r[id].fin || fin;
  }
  void on_body(StreamId id, std::span<const uint8_t> d, bool fin) override {
    r[id].body.append(d.begin(), d.end());
    r[id].fin = r[id].fin || fin;
    conn->consume(id, d.size());
  }
  void on_request_reset(StreamId id, uint64_t code) override { r[id].reset = code; }
  void on_request_closed(StreamId id) override { r[id].closed = true; }
  void on_goaway(uint64_t id) override { goaways.push_back(id); }
};

class H3RequestsTest : public DirectoryTest {
 protected:
  void SetUp() override {
    DirectoryTest::SetUp();
    make();
  }
  void make(H3RequestsConfig cfg = {}, MemoryPairConfig pc = {}) {
    server_.reset();
    requests_.reset();
    sc_.reset();
    cc_.reset();
    pair_ = std::make_unique<MemoryPair>(pc);
    cc_ = std::make_unique<h3::Connection>(pair_->client(), h3::Role::kClient,
                                           wt::webtransport_h3_config(h3::Role::kClient));
    sc_ = std::make_unique<h3::Connection>(pair_->server(), h3::Role::kServer,
                                           wt::webtransport_h3_config(h3::Role::kServer));
    cfg.exchange.client = client();
    cfg.exchange.clock = clock_.fn();
    requests_ = std::make_unique<H3Requests>(
        dir_, *sc_, cfg,
        ConnectionHooks{[this] { ++wakes_; }, [this](const RequestLog& l) { logs_.push_back(l); }});
    server_ = std::make_unique<wt::H3Server>(*sc_, wt::ServerConfig{}, wt::Acceptor{});
    server_->set_request_handler(requests_.get());
    view_.conn = cc_.get();
    cc_->set_handler(&view_);
    pair_->set_handler(MemoryPair::kClient, cc_.get());
    pair_->set_handler(MemoryPair::kServer, sc_.get());
    cc_->start();
    sc_->start();
    run();
  }
  void TearDown() override {
    server_.reset();  // before the handler it points to
    requests_.reset();
  }
  void run() { ASSERT_TRUE(pair_->run()); }
  StreamId request(std::string method, std::string path, std::string authority, h3::HeaderList extra = {},
                   bool fin = true) {
    h3::HeaderList h{{":method", std::move(method)},
                     {":scheme", "https"},
                     {":authority", std::move(authority)},
                     {":path", std::move(path)}};
    for (auto& f : extra) h.push_back(std::move(f));
    const auto id = cc_->send_request(h, fin);
    EXPECT_TRUE(id.has_value());
    return id.value_or(0);
  }
  size_t send(StreamId id, std::string_view body, bool fin) {
    return cc_->send_body(id, {reinterpret_cast<const uint8_t*>(body.data()), body.size()}, fin);
  }

  std::unique_ptr<MemoryPair> pair_;
  std::unique_ptr<h3::Connection> cc_, sc_;
  std::unique_ptr<H3Requests> requests_;
  std::unique_ptr<wt::H3Server> server_;
  ClientView view_;
  int wakes_ = 0;
  std::vector<RequestLog> logs_;
};

}  // namespace wtmesh::edge::test
