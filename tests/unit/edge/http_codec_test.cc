#include "edge/http_codec.h"

#include <gtest/gtest.h>

#include "edge/route_table.h"
#include "fakes.h"

namespace wtmesh::edge {
namespace {

namespace http = boost::beast::http;
using test::header_value;

TEST(ClientLimitKey, IPv4AsItselfIPv6ByItsSlash64) {
  namespace ip = boost::asio::ip;
  EXPECT_EQ(client_limit_key(ip::make_address("192.0.2.7")), "192.0.2.7");
  EXPECT_EQ(client_limit_key(ip::make_address("::ffff:192.0.2.7")), "192.0.2.7");
  EXPECT_EQ(client_limit_key(ip::make_address("2001:db8:1:2:aaaa::1")), "2001:db8:1:2::/64");
  EXPECT_EQ(client_limit_key(ip::make_address("2001:db8:1:2:ffff:1:2:3")), "2001:db8:1:2::/64");
  EXPECT_NE(client_limit_key(ip::make_address("2001:db8:1:3::1")), "2001:db8:1:2::/64");
}

http::request_header<> with_te(std::initializer_list<std::string_view> values, unsigned version = 11) {
  http::request_header<> req;
  req.version(version);
  for (auto v : values) req.insert(http::field::transfer_encoding, v);
  return req;
}

http::request_header<> get_with(std::initializer_list<std::pair<std::string_view, std::string_view>> fields,
                                unsigned version = 11) {
  http::request_header<> req;
  req.version(version);
  req.method(http::verb::get);
  for (const auto& [n, v] : fields) req.insert(n, v);
  return req;
}

TEST(RequestedUpgrade, WebSocketOnlyWithConnectionUpgradeOnAnHttp11Get) {
  EXPECT_EQ(requested_upgrade(get_with({{"Connection", "Upgrade"}, {"Upgrade", "websocket"}})), "websocket");
  EXPECT_EQ(requested_upgrade(get_with({{"Connection", "keep-alive, UPGRADE"}, {"Upgrade", "WebSocket"}})),
            "websocket")
      << "tokens are case-insensitive and Connection is a list";
  EXPECT_EQ(requested_upgrade(
                get_with({{"Connection", "close"}, {"Connection", "upgrade"}, {"Upgrade", "websocket"}})),
            "websocket")
      << "Connection may come more than once";
  EXPECT_EQ(requested_upgrade(get_with({{"Connection", "upgrade"}, {"Upgrade", "foo/2, websocket"}})),
            "websocket");
  EXPECT_EQ(requested_upgrade(get_with({{"Upgrade", "websocket"}})), "") << "no Connection: upgrade";
  EXPECT_EQ(requested_upgrade(get_with({{"Connection", "upgrade"}, {"Upgrade", "h2c"}})), "");
  EXPECT_EQ(requested_upgrade(get_with({{"Connection", "upgrade"}, {"Upgrade", "websocket"}}, 10)), "")
      << "HTTP/1.0";
  auto post = get_with({{"Connection", "upgrade"}, {"Upgrade", "websocket"}});
  post.method(http::verb::post);
  EXPECT_EQ(requested_upgrade(post), "");
}

TEST(SwitchingHead, TheAgentsEndToEndFieldsBehindOurUpgradeAndConnection) {
  tunnel::ResponseHead h;
  h.status = 101;
  h.has_body = true;
  h.headers = {{"sec-websocket-accept", "abc="},
               {"sec-websocket-protocol", "chat"},
               {"sec-websocket-extensions", "permessage-deflate"},
               {"connection", "upgrade"},
               {"upgrade", "other"},
               {"x-bad", "a\r\nb"}};
  EXPECT_EQ(switching_head_bytes(h, "websocket"),
            "HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\nconnection: Upgrade\r\n"
            "sec-websocket-accept: abc=\r\nsec-websocket-protocol: chat\r\n"
            "sec-websocket-extensions: permessage-deflate\r\n\r\n");
}

TEST(TransferEncodingStatus, OnlyAFinalSingleChunkedOnHttp11IsForwarded) {
  std::string detail;
  EXPECT_EQ(transfer_encoding_status(http::request_header<>{}, &detail), 0) << "no Transfer-Encoding";
  EXPECT_EQ(transfer_encoding_status(with_te({"chunked"}), &detail), 0);
  EXPECT_EQ(transfer_encoding_status(with_te({" Chunked "}), &detail), 0) << "codings are case-insensitive";
  EXPECT_EQ(transfer_encoding_status(with_te({"chunked, identity"}), &detail), 400);
  EXPECT_NE(detail.find("final"), std::string::npos) << detail;
  EXPECT_EQ(transfer_encoding_status(with_te({"xchunked"}), &detail), 400);
  EXPECT_EQ(transfer_encoding_status(with_te({"chunked;x=1"}), &detail), 400);
  EXPECT_EQ(transfer_encoding_status(with_te({"chunked", "identity"}), &detail), 400);
  EXPECT_EQ(transfer_encoding_status(with_te({"chunked", "chunked"}), &detail), 400);
  EXPECT_EQ(transfer_encoding_status(with_te({""}), &detail), 400);
  EXPECT_EQ(transfer_encoding_status(with_te({"chunked"}, 10), &detail), 400);
  EXPECT_EQ(transfer_encoding_status(with_te({"gzip, chunked"}), &detail), 501);
  EXPECT_NE(detail.find("gzip"), std::string::npos) << detail;
  EXPECT_EQ(transfer_encoding_status(with_te({"gzip", "chunked"}), &detail), 501);
}

TEST(NormalizeHost, StripsPortLowercasesAndValidates) {
  EXPECT_EQ(normalize_host("App.Localhost:8443"), "app.localhost");
  EXPECT_EQ(normalize_host("app.localhost"), "app.localhost");
  EXPECT_EQ(normalize_host("app.localhost."), "app.localhost");
  EXPECT_EQ(normalize_host(" 127.0.0.1:80 "), "127.0.0.1");
  EXPECT_EQ(normalize_host("[::1]:4433"), "::1");
  EXPECT_EQ(normalize_host("[::1]"), "::1");
  EXPECT_FALSE(normalize_host(""));
  EXPECT_FALSE(normalize_host(":80"));
  EXPECT_FALSE(normalize_host("a b.localhost"));
  EXPECT_FALSE(normalize_host("a.localhost:80x"));
  EXPECT_FALSE(normalize_host("a.localhost:123456"));
  EXPECT_FALSE(normalize_host("[::1"));
  EXPECT_FALSE(normalize_host("[::1]x"));
  EXPECT_FALSE(normalize_host("[zz]"));
  EXPECT_FALSE(normalize_host(std::string(300, 'a')));
  EXPECT_FALSE(normalize_host("evil.com/path"));
}

http::request_header<> request(std::initializer_list<std::pair<std::string, std::string>> fields) {
  http::request_header<> r;
  r.method(http::verb::post);
  r.target("/x?y=1");
  r.version(11);
  for (const auto& [n, v] : fields) r.insert(n, v);
  return r;
}

TEST(BuildRequestHead, DropsHopByHopAndAddsForwarding) {
  auto req = request({{"Host", "app.localhost:8443"},
                      {"Connection", "keep-alive, X-Secret"},
                      {"Keep-Alive", "timeout=5"},
                      {"X-Secret", "1"},
                      {"TE", "trailers"},
                      {"Upgrade", "h2c"},
                      {"Proxy-Connection", "x"},
                      {"Transfer-Encoding", "chunked"},
                      {"Content-Length", "5"},
                      {"Expect", "100-continue"},
                      {"X-Forwarded-For", "10.0.0.1"},
                      {"X-Forwarded-Proto", "gopher"},
                      {"Forwarded", "for=10.0.0.1"},
                      {"Accept", "*/*"},
                      {"Cookie", "a=b"}});
  tunnel::RequestHead head;
  std::string detail;
  ASSERT_EQ(build_request_head(req, "/x?y=1", "app.localhost:8443", std::nullopt, true, {"192.0.2.7", true},
                               9, head, &detail),
            0)
      << detail;
  EXPECT_EQ(head.tunnel_id, 9u);
  EXPECT_EQ(head.method, "POST");
  EXPECT_EQ(head.target, "/x?y=1");
  EXPECT_EQ(head.authority, "app.localhost:8443");
  EXPECT_TRUE(head.has_body);
  EXPECT_FALSE(head.content_length);
  for (const char* gone : {"connection", "keep-alive", "x-secret", "te", "upgrade", "proxy-connection",
                           "transfer-encoding", "content-length", "expect", "host"}) {
    EXPECT_EQ(header_value(head.headers, gone), "<none>") << gone;
  }
  EXPECT_EQ(header_value(head.headers, "accept"), "*/*");
  EXPECT_EQ(header_value(head.headers, "cookie"), "a=b");
  EXPECT_EQ(header_value(head.headers, "x-forwarded-for"), "10.0.0.1, 192.0.2.7");
  EXPECT_EQ(header_value(head.headers, "x-forwarded-proto"), "https");
  EXPECT_EQ(header_value(head.headers, "x-forwarded-host"), "app.localhost:8443");
  EXPECT_EQ(header_value(head.headers, "forwarded"),
            "for=10.0.0.1, for=192.0.2.7;host=\"app.localhost:8443\";proto=https");
  for (const auto& [n, v] : head.headers) EXPECT_EQ(n, lower_ascii(n));
}

TEST(EndToEndFields, TheHttp1SideKeepsOnlyEndToEndFieldsInOrder) {
  auto req = request({{"Host", "app.localhost"},
                      {"Connection", "close, X-Hop"},
                      {"X-Hop", "1"},
                      {"Upgrade", "websocket"},
                      {"Expect", "100-continue"},
                      {"X-Forwarded-For", "10.0.0.1"},
                      {"Accept", "*/*"},
                      {"Content-Length", "3"}});
  EXPECT_EQ(end_to_end_fields(req), (tunnel::HeaderPairs{{"x-forwarded-for", "10.0.0.1"}, {"accept", "*/*"}}))
      << "forwarding headers are merged by the exchange, not dropped here";
}

TEST(BuildRequestHead, ContentLengthAndIpv6AndPlainHttp) {
  auto req = request({{"Host", "a.localhost"}});
  tunnel::RequestHead head;
  std::string detail;
  ASSERT_EQ(build_request_head(req, "/", "a.localhost", 12, false, {"2001:db8::1", false}, 1, head, &detail),
            0);
  EXPECT_TRUE(head.has_body);
  EXPECT_EQ(head.content_length, 12u);
  EXPECT_EQ(header_value(head.headers, "x-forwarded-proto"), "http");
  EXPECT_EQ(header_value(head.headers, "forwarded"), "for=\"[2001:db8::1]\";host=\"a.localhost\";proto=http");
  ASSERT_EQ(build_request_head(req, "/", "a.localhost", 0, false, {"1.2.3.4", true}, 1, head, &detail), 0);
  EXPECT_FALSE(head.has_body);
  EXPECT_EQ(head.content_length, 0u);
  ASSERT_EQ(
      build_request_head(req, "/", "a.localhost", std::nullopt, false, {"1.2.3.4", true}, 1, head, &detail),
      0);
  EXPECT_FALSE(head.has_body);
  EXPECT_FALSE(head.content_length);
}

TEST(BuildRequestHead, TooManyFieldsIs431) {
  http::request_header<> req = request({{"Host", "a.localhost"}});
  for (int i = 0; i < 260; ++i) req.insert("x-h" + std::to_string(i), "v");
  tunnel::RequestHead head;
  std::string detail;
  EXPECT_EQ(
      build_request_head(req, "/", "a.localhost", std::nullopt, false, {"1.2.3.4", true}, 1, head, &detail),
      431);
  // Exactly the cap (our five forwarding headers included) is fine.
  req = request({{"Host", "a.localhost"}});
  for (size_t i = 0; i + 5 < tunnel::kMaxHeaderCount; ++i) req.insert("x-h" + std::to_string(i), "v");
  EXPECT_EQ(
      build_request_head(req, "/", "a.localhost", std::nullopt, false, {"1.2.3.4", true}, 1, head, &detail),
      0);
}

TEST(BuildRequestHead, HugeHeadIs431) {
  http::request_header<> req = request({{"Host", "a.localhost"}});
  for (int i = 0; i < 10; ++i) req.insert("x-big" + std::to_string(i), std::string(7000, 'v'));
  tunnel::RequestHead head;
  std::string detail;
  EXPECT_EQ(
      build_request_head(req, "/", "a.localhost", std::nullopt, false, {"1.2.3.4", true}, 1, head, &detail),
      431);
}

TEST(ExpectsContinue, OnlyHttp11) {
  auto req = request({{"Expect", " 100-Continue "}});
  EXPECT_TRUE(expects_continue(req));
  req.version(10);
  EXPECT_FALSE(expects_continue(req));
  EXPECT_FALSE(expects_continue(request({})));
}

tunnel::ResponseHead resp(int status, bool body, std::optional<uint64_t> len, tunnel::HeaderPairs h = {}) {
  return test::response_head(status, len, body, std::move(h));
}

TEST(ResponseHeadBytes, FramingChoices) {
  ResponsePlan p;
  std::string s =
      response_head_bytes(resp(200, true, 5, {{"content-type", "text/plain"}}), false, 11, true, &p);
  EXPECT_EQ(s, "HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: 5\r\n\r\n");
  EXPECT_EQ(p.framing, Framing::kLength);
  EXPECT_EQ(p.length, 5u);
  EXPECT_TRUE(p.keep_alive);

  s = response_head_bytes(resp(200, true, std::nullopt), false, 11, true, &p);
  EXPECT_EQ(s, "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n");
  EXPECT_EQ(p.framing, Framing::kChunked);

  s = response_head_bytes(resp(200, true, std::nullopt), false, 10, true, &p);
  EXPECT_EQ(s, "HTTP/1.0 200 OK\r\nconnection: close\r\n\r\n");
  EXPECT_EQ(p.framing, Framing::kClose);
  EXPECT_FALSE(p.keep_alive);

  s = response_head_bytes(resp(200, true, 3), false, 10, true, &p);
  EXPECT_EQ(s, "HTTP/1.0 200 OK\r\ncontent-length: 3\r\nconnection: keep-alive\r\n\r\n");

  s = response_head_bytes(resp(404, false, std::nullopt), false, 11, false, &p);
  EXPECT_EQ(s, "HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");

  s = response_head_bytes(resp(200, false, 42), true, 11, true, &p);  // HEAD
  EXPECT_EQ(s, "HTTP/1.1 200 OK\r\ncontent-length: 42\r\n\r\n");
  EXPECT_EQ(p.framing, Framing::kNone);

  s = response_head_bytes(resp(204, true, std::nullopt), false, 11, true, &p);
  EXPECT_EQ(s, "HTTP/1.1 204 No Content\r\n\r\n");
  EXPECT_EQ(p.framing, Framing::kNone);

  s = response_head_bytes(resp(299, false, 0), false, 11, true, &p);
  EXPECT_EQ(s.substr(0, 17), "HTTP/1.1 299 Unkn");
}

TEST(ResponseHeadBytes, DropsHopByHopFramingAndUnsafeHeaders) {
  ResponsePlan p;
  const std::string s = response_head_bytes(resp(200, true, 2,
                                                 {{"Connection", "close, x-private"},
                                                  {"x-private", "1"},
                                                  {"transfer-encoding", "chunked"},
                                                  {"content-length", "999"},
                                                  {"keep-alive", "5"},
                                                  {"wtmesh-error", "x"},
                                                  {"x-evil", "a\r\nset-cookie: pwned"},
                                                  {"bad name", "v"},
                                                  {"set-cookie", "a=1"},
                                                  {"set-cookie", "b=2"}}),
                                            false, 11, true, &p);
  EXPECT_EQ(s, "HTTP/1.1 200 OK\r\nset-cookie: a=1\r\nset-cookie: b=2\r\ncontent-length: 2\r\n\r\n");
}

TEST(HttpCodec, ChunksPagesAndEscaping) {
  EXPECT_EQ(chunk_header(0x1a2b), "1a2b\r\n");
  EXPECT_EQ(chunk_header(1), "1\r\n");
  EXPECT_EQ(html_escape("<a href=\"x\">&'"), "&lt;a href=&quot;x&quot;&gt;&amp;&#39;");
  EXPECT_EQ(sanitize_header_value(std::string("a\r\nb\0c", 6)), "abc");
  EXPECT_EQ(sanitize_header_value(std::string(600, 'x')).size(), 512u);
  const std::string page = error_response(502, "upstream refused: <x>\r\n", 11, false);
  EXPECT_TRUE(page.starts_with("HTTP/1.1 502 Bad Gateway\r\n")) << page;
  EXPECT_NE(page.find("wtmesh-error: upstream refused: <x>\r\n"), std::string::npos) << page;
  EXPECT_NE(page.find("connection: close\r\n"), std::string::npos);
  EXPECT_NE(page.find("upstream refused: &lt;x&gt;"), std::string::npos);
  const size_t body_at = page.find("\r\n\r\n") + 4;
  EXPECT_NE(page.find("content-length: " + std::to_string(page.size() - body_at) + "\r\n"),
            std::string::npos);
  const std::string nf = error_response(404, "no", 10, true);
  EXPECT_TRUE(nf.starts_with("HTTP/1.0 404 Not Found\r\n"));
  EXPECT_NE(nf.find("connection: keep-alive\r\n"), std::string::npos);
  EXPECT_EQ(nf.find("wtmesh-error"), std::string::npos);
}

}  // namespace
}  // namespace wtmesh::edge
