// The set-up shared by the tests of the public side's sans-I/O parts (PublicExchange, Http1Connection):
// a FakeDirectory with one route (app.localhost), a settable clock, the public client they pretend
// to serve, and the agent's side of the request stream opened last.
#pragma once

#include <gtest/gtest.h>

#include <optional>
#include <string_view>
#include <utility>

#include "edge/public_exchange.h"
#include "fakes.h"

namespace wtmesh::edge::test {

class DirectoryTest : public ::testing::Test {
 protected:
  void SetUp() override { dir_.add_route("app.localhost"); }

  static ClientInfo client() { return {"192.0.2.1", true}; }
  FakeDirectory::Stream& stream() { return dir_.streams[dir_.last]; }
  static tunnel::ResponseHead head(int status, std::optional<uint64_t> len, bool body = true,
                                   tunnel::HeaderPairs h = {}) {
    return response_head(status, len, body, std::move(h));
  }
  // The agent answers on the last stream: a response head and the first body bytes.
  void agent_answers(const tunnel::ResponseHead& head, std::string_view body, bool fin) {
    auto b = tunnel::encode_response_head(head);
    b.insert(b.end(), body.begin(), body.end());
    stream().events->on_response_data(b, fin);
  }

  FakeClock clock_;
  FakeDirectory dir_;
};

}  // namespace wtmesh::edge::test
