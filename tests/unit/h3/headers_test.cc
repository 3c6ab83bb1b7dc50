// Message validation tests (RFC 9114 §4.1.2, §4.3; RFC 9220).
#include "h3/headers.h"

#include <gtest/gtest.h>

namespace wtmesh::h3 {
namespace {

HeaderList req() { return {{":method", "GET"}, {":scheme", "https"}, {":authority", "a"}, {":path", "/"}}; }

TEST(Headers, FindHeader) {
  HeaderList h{{"a", "1"}, {"b", "2"}, {"a", "3"}};
  ASSERT_NE(find_header(h, "a"), nullptr);
  EXPECT_EQ(*find_header(h, "a"), "1");
  EXPECT_EQ(find_header(h, "c"), nullptr);
}

TEST(Headers, ValidRequests) {
  EXPECT_FALSE(validate_request_headers(req(), false));
  HeaderList host{{":method", "GET"}, {":scheme", "https"}, {":path", "/"}, {"host", "a"}};
  EXPECT_FALSE(validate_request_headers(host, false));
  EXPECT_FALSE(validate_request_headers({{":method", "CONNECT"}, {":authority", "a:1"}}, false));
  HeaderList ext{{":method", "CONNECT"}, {":protocol", "webtransport"},
                 {":scheme", "https"},   {":authority", "a"},
                 {":path", "/wt"},       {"te", "trailers"}};
  EXPECT_FALSE(validate_request_headers(ext, true));
  EXPECT_TRUE(validate_request_headers(ext, false));  // not enabled by our SETTINGS
}

TEST(Headers, InvalidRequests) {
  auto with = [](Header extra) {
    HeaderList h = req();
    h.push_back(std::move(extra));
    return h;
  };
  EXPECT_TRUE(validate_request_headers(with({"te", "gzip"}), false));
  EXPECT_TRUE(validate_request_headers(with({"transfer-encoding", "chunked"}), false));
  EXPECT_TRUE(validate_request_headers(with({"keep-alive", "1"}), false));
  EXPECT_TRUE(validate_request_headers(with({"x", std::string("a\nb")}), false));
  EXPECT_TRUE(validate_request_headers(with({"x", std::string("a\0b", 3)}), false));
  EXPECT_TRUE(validate_request_headers(with({"bad name", "1"}), false));
  EXPECT_TRUE(validate_request_headers(with({"", "1"}), false));
  EXPECT_TRUE(validate_request_headers(with({"a:b", "1"}), false));
  EXPECT_TRUE(validate_request_headers(with({":foo", "1"}), false));
  EXPECT_TRUE(validate_request_headers(
      {{":method", ""}, {":scheme", "h"}, {":authority", "a"}, {":path", "/"}}, false));
  EXPECT_TRUE(validate_request_headers(
      {{":method", "GET"}, {":scheme", "h"}, {":authority", "a"}, {":path", ""}}, false));
  EXPECT_TRUE(validate_request_headers(
      {{":method", "CONNECT"}, {":protocol", ""}, {":scheme", "https"}, {":authority", "a"}, {":path", "/"}},
      true));
}

TEST(Headers, Responses) {
  EXPECT_FALSE(validate_response_headers({{":status", "200"}, {"content-type", "x"}}));
  EXPECT_TRUE(validate_response_headers({}));
  EXPECT_TRUE(validate_response_headers({{":status", "20"}}));
  EXPECT_TRUE(validate_response_headers({{":status", "2x0"}}));
  EXPECT_TRUE(validate_response_headers({{":status", "099"}}));
  EXPECT_TRUE(validate_response_headers({{":status", "200"}, {":status", "200"}}));
  EXPECT_TRUE(validate_response_headers({{":status", "200"}, {":path", "/"}}));
  EXPECT_TRUE(is_informational_response({{":status", "103"}}));
  EXPECT_FALSE(is_informational_response({{":status", "200"}}));
}

TEST(Headers, Trailers) {
  EXPECT_FALSE(validate_trailers({{"x-sum", "1"}}));
  EXPECT_FALSE(validate_trailers({}));
  EXPECT_TRUE(validate_trailers({{":status", "200"}}));
}

}  // namespace
}  // namespace wtmesh::h3
