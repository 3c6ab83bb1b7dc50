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
#include "tunnel/framed_body.h"

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

  // An answer with the session feature `trailers` (docs/protocol.md §4.1): interim heads of
  // `interim` statuses (link: </a>), `final` with the framed flag, `data` as one chunk, then the end
  // with `trailers` unless they are nullopt (the body goes on).
  static std::vector<uint8_t> framed_answer(std::initializer_list<int> interim, tunnel::ResponseHead final,
                                            std::string_view data,
                                            std::optional<tunnel::HeaderPairs> trailers) {
    std::vector<uint8_t> wire;
    for (int status : interim) {
      const auto ih = tunnel::encode_response_head(head(status, std::nullopt, false, {{"link", "</a>"}}));
      wire.insert(wire.end(), ih.begin(), ih.end());
    }
    final.framed = true;
    const auto fh = tunnel::encode_response_head(final);
    wire.insert(wire.end(), fh.begin(), fh.end());
    tunnel::append_body_chunk(wire, {reinterpret_cast<const uint8_t*>(data.data()), data.size()});
    if (trailers) {
      EXPECT_TRUE(tunnel::append_body_end(wire, *trailers));
    }
    return wire;
  }

  FakeClock clock_;
  FakeDirectory dir_;
};

}  // namespace wtmesh::edge::test
