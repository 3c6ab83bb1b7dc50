// edge/first_bytes.h: the name a new public connection asks for, from a ClientHello GnuTLS wrote and
// from hand-built ones cut and bent at every field, and from HTTP/1 request heads.
#include "edge/first_bytes.h"

#include <gnutls/gnutls.h>
#include <gtest/gtest.h>

#include <cstring>
#include <string>
#include <vector>

namespace wtmesh::edge {
namespace {

using Bytes = std::vector<uint8_t>;

// What a GnuTLS client sends first when it asks for `server_name`.
Bytes gnutls_client_hello(const std::string& server_name) {
  gnutls_session_t session = nullptr;
  EXPECT_EQ(gnutls_init(&session, GNUTLS_CLIENT | GNUTLS_NONBLOCK), 0);
  gnutls_certificate_credentials_t creds = nullptr;
  gnutls_certificate_allocate_credentials(&creds);
  gnutls_credentials_set(session, GNUTLS_CRD_CERTIFICATE, creds);
  gnutls_set_default_priority(session);
  if (!server_name.empty())
    gnutls_server_name_set(session, GNUTLS_NAME_DNS, server_name.data(), server_name.size());
  Bytes out;
  gnutls_transport_set_ptr(session, &out);
  gnutls_transport_set_push_function(session, [](gnutls_transport_ptr_t p, const void* data, size_t n) {
    auto* o = static_cast<Bytes*>(p);
    o->insert(o->end(), static_cast<const uint8_t*>(data), static_cast<const uint8_t*>(data) + n);
    return static_cast<ssize_t>(n);
  });
  gnutls_transport_set_pull_function(session, [](gnutls_transport_ptr_t, void*, size_t) -> ssize_t {
    errno = EAGAIN;
    return -1;
  });
  gnutls_transport_set_errno_function(session, [](gnutls_transport_ptr_t) { return EAGAIN; });
  EXPECT_EQ(gnutls_handshake(session), GNUTLS_E_AGAIN);
  gnutls_deinit(session);
  gnutls_certificate_free_credentials(creds);
  return out;
}

void put16(Bytes& b, size_t v) {
  b.push_back(static_cast<uint8_t>(v >> 8));
  b.push_back(static_cast<uint8_t>(v));
}

// A ClientHello record whose extensions are `extensions` (each already framed).
Bytes hello_with(const Bytes& extensions, uint8_t record_type = 22, uint8_t message = 1) {
  Bytes hello{0x03, 0x03};
  hello.insert(hello.end(), 32, 0xab);  // random
  hello.push_back(0);                   // no session id
  put16(hello, 2);
  hello.insert(hello.end(), {0x13, 0x01});  // one cipher suite
  hello.insert(hello.end(), {0x01, 0x00});  // null compression
  put16(hello, extensions.size());
  hello.insert(hello.end(), extensions.begin(), extensions.end());
  Bytes msg{message, 0, static_cast<uint8_t>(hello.size() >> 8), static_cast<uint8_t>(hello.size())};
  msg.insert(msg.end(), hello.begin(), hello.end());
  Bytes record{record_type, 0x03, 0x01};
  put16(record, msg.size());
  record.insert(record.end(), msg.begin(), msg.end());
  return record;
}

Bytes extension(size_t type, const Bytes& body) {
  Bytes e;
  put16(e, type);
  put16(e, body.size());
  e.insert(e.end(), body.begin(), body.end());
  return e;
}

Bytes server_name_ext(const std::string& name, uint8_t name_type = 0) {
  Bytes entry{name_type};
  put16(entry, name.size());
  entry.insert(entry.end(), name.begin(), name.end());
  Bytes body;
  put16(body, entry.size());
  body.insert(body.end(), entry.begin(), entry.end());
  return extension(0, body);
}

Bytes concat(std::initializer_list<Bytes> parts) {
  Bytes out;
  for (const Bytes& p : parts) out.insert(out.end(), p.begin(), p.end());
  return out;
}

TEST(ClientHelloServerName, ReadsTheNameFromAGnuTlsClientHello) {
  const Bytes hello = gnutls_client_hello("App.Tunnel.Example.com");
  ASSERT_GT(hello.size(), 100u);
  EXPECT_EQ(client_hello_server_name(hello), "app.tunnel.example.com");
  EXPECT_EQ(client_hello_server_name(gnutls_client_hello("")), std::nullopt) << "no SNI";
}

TEST(ClientHelloServerName, ACutShortHelloGivesTheNameOnlyWhenItIsThere) {
  const Bytes hello = hello_with(
      concat({extension(10, Bytes(40, 1)), server_name_ext("a.example.com"), extension(43, Bytes(3000, 2))}));
  EXPECT_EQ(client_hello_server_name(hello), "a.example.com");
  // Where the name ends: the record's and message's headers, the hello's fixed fields (version,
  // random, session id, suites, compression, extensions' length), the first extension, then ours.
  const size_t name_end = 5 + 4 + 2 + 32 + 1 + 4 + 2 + 2 + 44 + 22;
  for (size_t n = 0; n < hello.size(); ++n) {
    const auto got = client_hello_server_name(std::span(hello).first(n));
    if (n >= name_end)
      EXPECT_EQ(got, "a.example.com") << n;
    else
      EXPECT_EQ(got, std::nullopt) << n;
  }
}

TEST(ClientHelloServerName, AnythingElseNamesNothing) {
  EXPECT_EQ(client_hello_server_name(hello_with(server_name_ext("a.example.com"), 23)), std::nullopt)
      << "application data, not a handshake";
  EXPECT_EQ(client_hello_server_name(hello_with(server_name_ext("a.example.com"), 22, 2)), std::nullopt)
      << "a ServerHello";
  EXPECT_EQ(client_hello_server_name(hello_with(server_name_ext("a.example.com", 1))), std::nullopt)
      << "a name type other than host_name";
  EXPECT_EQ(client_hello_server_name(hello_with(server_name_ext("a b.example.com"))), std::nullopt);
  EXPECT_EQ(client_hello_server_name(hello_with(server_name_ext("a.example.com."))), std::nullopt);
  EXPECT_EQ(client_hello_server_name(hello_with(server_name_ext(std::string(254, 'a')))), std::nullopt);
  EXPECT_EQ(client_hello_server_name(hello_with(server_name_ext(""))), std::nullopt);
  EXPECT_EQ(client_hello_server_name(hello_with(extension(16, Bytes{0, 3, 2, 'h', '2'}))), std::nullopt)
      << "no server_name extension";
  const std::string http = "GET / HTTP/1.1\r\nHost: a.example.com\r\n\r\n";
  EXPECT_EQ(client_hello_server_name(std::span(reinterpret_cast<const uint8_t*>(http.data()), http.size())),
            std::nullopt);
  Bytes oversized = hello_with(server_name_ext("a.example.com"));
  oversized[3] = 0x40;  // a record length of 16 KiB + 1 and more
  oversized[4] = 0x01;
  EXPECT_EQ(client_hello_server_name(oversized), std::nullopt);
  Bytes long_session_id = hello_with(server_name_ext("a.example.com"));
  long_session_id[5 + 4 + 2 + 32] = 33;
  EXPECT_EQ(client_hello_server_name(long_session_id), std::nullopt);
}

std::optional<std::string> host_of(const std::string& head) {
  return request_head_host(std::span(reinterpret_cast<const uint8_t*>(head.data()), head.size()));
}

TEST(RequestHeadHost, ReadsTheHostOfAWholeHead) {
  EXPECT_EQ(host_of("GET /x HTTP/1.1\r\nUser-Agent: t\r\nHost: App.Example.com:8080\r\n\r\nbody"),
            "app.example.com");
  EXPECT_EQ(host_of("GET /x HTTP/1.1\r\nHost: app.example.com\r\n"), std::nullopt) << "the head is not whole";
  EXPECT_EQ(host_of("GET /x HTTP/1.0\r\n\r\n"), std::nullopt) << "no Host";
  EXPECT_EQ(host_of("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"), std::nullopt) << "the HTTP/2 preface";
  EXPECT_EQ(host_of("\x16\x03\x01\x00\x05hello"), std::nullopt);
  EXPECT_EQ(host_of(""), std::nullopt);
}

}  // namespace
}  // namespace wtmesh::edge
