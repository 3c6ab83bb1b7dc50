// quic::AddressLimits: live connections per address, the handshake token bucket, how addresses are
// grouped (IPv4, IPv4-mapped IPv6, IPv6 /64) and the bound on the bucket table.
#include "quic/address_limits.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>

#include <string>

namespace wtmesh::quic {
namespace {

constexpr Timestamp kSecond = 1'000'000'000;

AddressKey key_of(const std::string& text) {
  sockaddr_storage ss{};
  socklen_t len = 0;
  if (text.find(':') == std::string::npos) {
    auto* in = reinterpret_cast<sockaddr_in*>(&ss);
    in->sin_family = AF_INET;
    inet_pton(AF_INET, text.c_str(), &in->sin_addr);
    len = sizeof(sockaddr_in);
  } else {
    auto* in6 = reinterpret_cast<sockaddr_in6*>(&ss);
    in6->sin6_family = AF_INET6;
    inet_pton(AF_INET6, text.c_str(), &in6->sin6_addr);
    len = sizeof(sockaddr_in6);
  }
  const auto k = address_key(reinterpret_cast<const sockaddr*>(&ss), len);
  EXPECT_TRUE(k.has_value()) << text;
  return k.value_or(AddressKey{});
}

TEST(AddressLimitsTest, AddressesAreGroupedLikeTheEdgesClientLimitKey) {
  EXPECT_EQ(key_of("192.0.2.1").to_string(), "192.0.2.1");
  EXPECT_EQ(key_of("::ffff:192.0.2.1"), key_of("192.0.2.1")) << "an IPv4 client on a dual-stack socket";
  EXPECT_EQ(key_of("2001:db8:1:2::1"), key_of("2001:db8:1:2:ffff::9")) << "one /64";
  EXPECT_FALSE(key_of("2001:db8:1:3::1") == key_of("2001:db8:1:2::1"));
  EXPECT_EQ(key_of("2001:db8:1:2::1").to_string(), "2001:db8:1:2::/64");
  EXPECT_FALSE(key_of("192.0.2.1") == key_of("192.0.2.2"));
  sockaddr unix_like{};
  unix_like.sa_family = AF_UNIX;
  EXPECT_FALSE(address_key(&unix_like, sizeof(unix_like)).has_value());
  EXPECT_FALSE(address_key(nullptr, 0).has_value());
}

TEST(AddressLimitsTest, LiveConnectionsAreCappedPerAddress) {
  AddressLimits l({.max_connections_per_address = 2, .handshake_burst = 100, .handshakes_per_second = 100});
  const AddressKey a = key_of("192.0.2.1"), b = key_of("192.0.2.2");
  for (int i = 0; i < 2; ++i) {
    ASSERT_EQ(l.admit(a, kSecond), AddressLimits::Verdict::kAdmit) << i;
    l.opened(a);
  }
  EXPECT_EQ(l.admit(a, kSecond), AddressLimits::Verdict::kTooManyConnections);
  EXPECT_EQ(l.admit(b, kSecond), AddressLimits::Verdict::kAdmit) << "other addresses are not affected";
  l.closed(a);
  EXPECT_EQ(l.connections(a), 1u);
  EXPECT_EQ(l.admit(a, kSecond), AddressLimits::Verdict::kAdmit) << "a slot freed";
  l.opened(a);
  l.closed(a);
  l.closed(a);
  EXPECT_EQ(l.addresses_with_connections(), 0u) << "no entry is kept for an address without connections";
  l.closed(a);  // unpaired: ignored
  EXPECT_EQ(l.connections(a), 0u);
}

TEST(AddressLimitsTest, HandshakesFollowATokenBucket) {
  AddressLimits l({.max_connections_per_address = 0, .handshake_burst = 3, .handshakes_per_second = 2});
  const AddressKey a = key_of("198.51.100.7");
  for (int i = 0; i < 3; ++i) EXPECT_EQ(l.admit(a, kSecond), AddressLimits::Verdict::kAdmit) << i;
  EXPECT_EQ(l.admit(a, kSecond), AddressLimits::Verdict::kTooManyHandshakes);
  EXPECT_EQ(l.admit(a, kSecond + kSecond / 4), AddressLimits::Verdict::kTooManyHandshakes) << "half a token";
  EXPECT_EQ(l.admit(a, kSecond + kSecond / 2), AddressLimits::Verdict::kAdmit) << "one back after 0.5 s";
  EXPECT_EQ(l.admit(a, kSecond + kSecond / 2), AddressLimits::Verdict::kTooManyHandshakes);
  // Refills stop at the burst.
  for (int i = 0; i < 3; ++i) EXPECT_EQ(l.admit(a, 100 * kSecond), AddressLimits::Verdict::kAdmit) << i;
  EXPECT_EQ(l.admit(a, 100 * kSecond), AddressLimits::Verdict::kTooManyHandshakes);
}

TEST(AddressLimitsTest, TheBucketTableIsBoundedLeastRecentlySeenFirst) {
  AddressLimits l({.max_connections_per_address = 0,
                   .handshake_burst = 1,
                   .handshakes_per_second = 0.001,
                   .max_tracked = 2});
  const AddressKey a = key_of("192.0.2.1"), b = key_of("192.0.2.2"), c = key_of("192.0.2.3");
  EXPECT_EQ(l.admit(a, kSecond), AddressLimits::Verdict::kAdmit);
  EXPECT_EQ(l.admit(b, kSecond), AddressLimits::Verdict::kAdmit);
  EXPECT_EQ(l.admit(a, kSecond), AddressLimits::Verdict::kTooManyHandshakes);  // a is now the most recent
  EXPECT_EQ(l.admit(c, kSecond), AddressLimits::Verdict::kAdmit);              // evicts b
  EXPECT_EQ(l.tracked(), 2u);
  EXPECT_EQ(l.evicted(), 1u);
  EXPECT_EQ(l.admit(a, kSecond), AddressLimits::Verdict::kTooManyHandshakes) << "a was kept";
  EXPECT_EQ(l.admit(b, kSecond), AddressLimits::Verdict::kAdmit) << "b starts again with a full bucket";
}

}  // namespace
}  // namespace wtmesh::quic
