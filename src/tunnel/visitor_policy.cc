#include "tunnel/visitor_policy.h"

#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>

#include <boost/asio/ip/address.hpp>
#include <charconv>
#include <nlohmann/json.hpp>

#include "tunnel/base64url.h"
#include "tunnel/es256.h"

namespace wtmesh::tunnel {

using nlohmann::json;

namespace {

bool derive(std::string_view password, std::span<const uint8_t> salt, uint32_t iterations,
            std::array<uint8_t, 32>& out) {
  gnutls_datum_t key{reinterpret_cast<unsigned char*>(const_cast<char*>(password.data())),
                     static_cast<unsigned>(password.size())};
  gnutls_datum_t s{const_cast<unsigned char*>(salt.data()), static_cast<unsigned>(salt.size())};
  return gnutls_pbkdf2(GNUTLS_MAC_SHA256, &key, &s, iterations, out.data(), out.size()) == 0;
}

bool printable_user(std::string_view user) {
  for (const char c : user) {
    const auto u = static_cast<unsigned char>(c);
    if (u < 0x20 || u == 0x7f || c == ':') return false;
  }
  return true;
}

// An address as 16 bytes (IPv4 in the first 4), or nullopt. IPv4-mapped IPv6 counts as IPv4.
std::optional<std::pair<std::array<uint8_t, 16>, bool>> address_bytes(std::string_view text) {
  boost::system::error_code ec;
  auto a = boost::asio::ip::make_address(std::string(text), ec);
  if (ec) return std::nullopt;
  std::array<uint8_t, 16> out{};
  if (a.is_v6() && a.to_v6().is_v4_mapped())
    a = boost::asio::ip::make_address_v4(boost::asio::ip::v4_mapped, a.to_v6());
  if (a.is_v4()) {
    const auto b = a.to_v4().to_bytes();
    std::copy(b.begin(), b.end(), out.begin());
    return std::pair{out, true};
  }
  const auto b = a.to_v6().to_bytes();
  std::copy(b.begin(), b.end(), out.begin());
  return std::pair{out, false};
}

bool prefix_equal(const std::array<uint8_t, 16>& a, const std::array<uint8_t, 16>& b, unsigned bits) {
  for (unsigned i = 0; i < 16 && bits > 0; ++i) {
    const unsigned take = bits >= 8 ? 8 : bits;
    const auto mask = static_cast<uint8_t>(0xff << (8 - take));
    if ((a[i] & mask) != (b[i] & mask)) return false;
    bits -= take;
  }
  return true;
}

template <size_t N>
bool decode_fixed(const json& j, const char* key, std::array<uint8_t, N>& out) {
  const auto it = j.find(key);
  if (it == j.end() || !it->is_string()) return false;
  const auto bytes = base64url_decode(it->get_ref<const std::string&>(), N);
  if (!bytes || bytes->size() != N) return false;
  std::copy(bytes->begin(), bytes->end(), out.begin());
  return true;
}

bool decode_cidrs(const json& j, const char* key, std::vector<CidrRange>& out, std::string* error) {
  const auto it = j.find(key);
  if (it == j.end()) return true;
  if (!it->is_array() || it->size() > kMaxCidrs) {
    *error = std::string(key) + " is not a list of at most " + std::to_string(kMaxCidrs) + " ranges";
    return false;
  }
  for (const auto& v : *it) {
    if (!v.is_string() || v.get_ref<const std::string&>().size() > 64) {
      *error = std::string(key) + " holds something that is not a range";
      return false;
    }
    auto r = parse_cidr(v.get_ref<const std::string&>(), error);
    if (!r) return false;
    out.push_back(*r);
  }
  return true;
}

}  // namespace

std::optional<BasicCredential> make_basic_credential(std::string_view user_colon_password, std::string* error,
                                                     uint32_t iterations) {
  const size_t colon = user_colon_password.find(':');
  if (colon == std::string_view::npos) {
    *error = "not USER:PASSWORD";
    return std::nullopt;
  }
  const std::string_view user = user_colon_password.substr(0, colon);
  const std::string_view password = user_colon_password.substr(colon + 1);
  if (user.empty() || user.size() > kMaxBasicUser || !printable_user(user)) {
    *error = "the user must be 1.." + std::to_string(kMaxBasicUser) + " printable bytes";
    return std::nullopt;
  }
  if (password.empty() || password.size() > kMaxBasicPassword) {
    *error = "the password must be 1.." + std::to_string(kMaxBasicPassword) + " bytes";
    return std::nullopt;
  }
  BasicCredential c;
  c.user = std::string(user);
  c.iterations = iterations;
  if (gnutls_rnd(GNUTLS_RND_NONCE, c.salt.data(), c.salt.size()) != 0 ||
      !derive(password, c.salt, c.iterations, c.hash)) {
    *error = "cannot derive the password's hash";
    return std::nullopt;
  }
  return c;
}

bool basic_password_matches(const BasicCredential& credential, std::string_view password) {
  if (password.size() > kMaxBasicPassword) return false;
  std::array<uint8_t, 32> h{};
  if (!derive(password, credential.salt, credential.iterations, h)) return false;
  return gnutls_memcmp(h.data(), credential.hash.data(), h.size()) == 0;
}

std::optional<CidrRange> parse_cidr(std::string_view text, std::string* error) {
  const std::string shown(text.substr(0, 64));
  const size_t slash = text.find('/');
  const auto addr = address_bytes(text.substr(0, slash));
  if (!addr) {
    *error = "\"" + shown + "\" is not an IP address or range (ADDRESS/BITS)";
    return std::nullopt;
  }
  CidrRange r;
  r.address = addr->first;
  r.v4 = addr->second;
  const unsigned max_bits = r.v4 ? 32 : 128;
  unsigned bits = max_bits;
  if (slash != std::string_view::npos) {
    const std::string_view b = text.substr(slash + 1);
    const auto [end, ec] = std::from_chars(b.data(), b.data() + b.size(), bits);
    if (b.empty() || ec != std::errc() || end != b.data() + b.size() || bits > max_bits) {
      *error = "\"" + shown + "\": the prefix must be 0.." + std::to_string(max_bits) + " bits";
      return std::nullopt;
    }
  }
  r.prefix = static_cast<uint8_t>(bits);
  // Bits past the prefix must be zero.
  for (unsigned i = bits; i < max_bits; ++i) {
    if ((r.address[i / 8] >> (7 - i % 8)) & 1) {
      *error = "\"" + shown + "\" has address bits set past its /" + std::to_string(bits) + " prefix";
      return std::nullopt;
    }
  }
  return r;
}

std::string to_string(const CidrRange& range) {
  std::string out;
  if (range.v4) {
    boost::asio::ip::address_v4::bytes_type b{};
    std::copy_n(range.address.begin(), 4, b.begin());
    out = boost::asio::ip::address_v4(b).to_string();
  } else {
    boost::asio::ip::address_v6::bytes_type b{};
    std::copy(range.address.begin(), range.address.end(), b.begin());
    out = boost::asio::ip::address_v6(b).to_string();
  }
  return out + "/" + std::to_string(range.prefix);
}

std::optional<VisitorAuthMin> parse_visitor_auth_min(std::string_view text) {
  if (text == "none") return VisitorAuthMin::kNone;
  if (text == "any") return VisitorAuthMin::kAny;
  if (text == "challenge") return VisitorAuthMin::kChallenge;
  if (text == "credentials") return VisitorAuthMin::kCredentials;
  return std::nullopt;
}

const char* to_string(VisitorAuthMin min) {
  switch (min) {
    case VisitorAuthMin::kNone:
      return "none";
    case VisitorAuthMin::kAny:
      return "any";
    case VisitorAuthMin::kChallenge:
      return "challenge";
    case VisitorAuthMin::kCredentials:
      return "credentials";
  }
  return "none";
}

std::string visitor_auth_shortfall(const VisitorPolicy& p, VisitorAuthMin min) {
  switch (min) {
    case VisitorAuthMin::kNone:
      return {};
    case VisitorAuthMin::kAny:
      if (!p.basic.empty() || !p.token_keys.empty() || !p.allow.empty() || p.challenge) return {};
      return "this edge requires visitor auth on every http tunnel (--basic-auth, --require-token, "
             "--allow-cidr or --challenge)";
    case VisitorAuthMin::kChallenge:
      if (p.challenge || p.requires_credentials()) return {};
      return "this edge requires the browser check or credentials on every http tunnel (--challenge, "
             "--basic-auth or --require-token)";
    case VisitorAuthMin::kCredentials:
      if (p.requires_credentials()) return {};
      return p.challenge ? "this edge requires credentials on every http tunnel, and --challenge would let "
                           "visitors in without them (--basic-auth or --require-token, no --challenge)"
                         : "this edge requires credentials on every http tunnel (--basic-auth or "
                           "--require-token)";
  }
  return {};
}

std::optional<std::string> visitor_token_key(std::string_view pem, std::string* error) {
  if (pem.find("PRIVATE KEY") != std::string_view::npos) {
    try {
      return es256::PrivateKey::from_pem(pem).public_pem();
    } catch (const std::exception& e) {
      *error = std::string("not a P-256 private key: ") + e.what();
      return std::nullopt;
    }
  }
  std::string why;
  auto key = es256::PublicKey::from_pem(pem, &why);
  if (!key) {
    *error = "not a P-256 public key: " + why;
    return std::nullopt;
  }
  return key->public_pem();
}

bool cidr_contains(const CidrRange& range, std::string_view ip) {
  const auto addr = address_bytes(ip);
  if (!addr || addr->second != range.v4) return false;
  return prefix_equal(range.address, addr->first, range.prefix);
}

json encode_visitor_policy(const VisitorPolicy& policy) {
  json j = json::object();
  if (!policy.basic.empty()) {
    json basic = json::array();
    for (const auto& c : policy.basic) {
      basic.push_back({{"user", c.user},
                       {"salt", base64url_encode(c.salt)},
                       {"hash", base64url_encode(c.hash)},
                       {"iter", c.iterations}});
    }
    j["basic"] = std::move(basic);
  }
  const auto cidrs = [](const std::vector<CidrRange>& list) {
    json a = json::array();
    for (const auto& r : list) a.push_back(to_string(r));
    return a;
  };
  if (!policy.allow.empty()) j["allow_cidr"] = cidrs(policy.allow);
  if (!policy.deny.empty()) j["deny_cidr"] = cidrs(policy.deny);
  if (!policy.token_keys.empty()) j["token_keys"] = policy.token_keys;
  if (policy.challenge) j["challenge"] = true;
  return j;
}

std::optional<VisitorPolicy> decode_visitor_policy(const json& j, std::string* error) {
  if (!j.is_object()) {
    *error = "visitor is not an object";
    return std::nullopt;
  }
  VisitorPolicy p;
  if (const auto it = j.find("basic"); it != j.end()) {
    if (!it->is_array() || it->size() > kMaxBasicCredentials) {
      *error = "basic is not a list of at most " + std::to_string(kMaxBasicCredentials) + " credentials";
      return std::nullopt;
    }
    for (const auto& v : *it) {
      BasicCredential c;
      const auto user = v.is_object() ? v.find("user") : v.end();
      const auto iter = v.is_object() ? v.find("iter") : v.end();
      if (!v.is_object() || user == v.end() || !user->is_string() || iter == v.end() ||
          !iter->is_number_unsigned() || !decode_fixed(v, "salt", c.salt) ||
          !decode_fixed(v, "hash", c.hash)) {
        *error = "a basic credential is not {user, salt, hash, iter}";
        return std::nullopt;
      }
      c.user = user->get<std::string>();
      const uint64_t n = iter->get<uint64_t>();
      if (c.user.empty() || c.user.size() > kMaxBasicUser || !printable_user(c.user) || n < 1 ||
          n > kMaxBasicIterations) {
        *error = "a basic credential's user or iteration count is out of bounds";
        return std::nullopt;
      }
      c.iterations = static_cast<uint32_t>(n);
      p.basic.push_back(std::move(c));
    }
  }
  if (!decode_cidrs(j, "allow_cidr", p.allow, error) || !decode_cidrs(j, "deny_cidr", p.deny, error))
    return std::nullopt;
  if (const auto it = j.find("token_keys"); it != j.end()) {
    if (!it->is_array() || it->size() > kMaxTokenKeys) {
      *error = "token_keys is not a list of at most " + std::to_string(kMaxTokenKeys) + " keys";
      return std::nullopt;
    }
    for (const auto& v : *it) {
      std::string why;
      if (!v.is_string() || v.get_ref<const std::string&>().size() > kMaxTokenKeyPem ||
          !es256::PublicKey::from_pem(v.get_ref<const std::string&>(), &why)) {
        *error = "a token key is not a P-256 public key PEM";
        return std::nullopt;
      }
      p.token_keys.push_back(v.get<std::string>());
    }
  }
  if (const auto it = j.find("challenge"); it != j.end()) {
    if (!it->is_boolean()) {
      *error = "challenge is not a boolean";
      return std::nullopt;
    }
    p.challenge = it->get<bool>();
  }
  return p;
}

}  // namespace wtmesh::tunnel
