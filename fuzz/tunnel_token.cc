// libFuzzer target for tunnel token verification (tunnel/token.h). The first byte picks what the rest
// is: a whole compact token, a signed payload JSON, or a signed header JSON (so the claim and header
// parsers behind the signature check are reached too). Also checks that base64url decoding is
// canonical (decode then encode gives the input back) and that verified claims re-sign and re-verify.
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "tunnel/base64url.h"
#include "tunnel/token.h"

namespace {

using namespace wtmesh::tunnel;

struct Fixture {
  SigningKey key = SigningKey::generate();
  VerifierKeySet keys;
  std::string payload;
  Fixture() {
    keys.add_pem(key.public_pem());
    TokenClaims c = make_claims("fuzz", {"fuzz.localhost", "*.fuzz.localhost"}, std::chrono::hours(1), now());
    std::string token = key.sign(c);
    size_t a = token.find('.'), b = token.find('.', a + 1);
    payload = *base64url_decode(token.substr(a + 1, b - a - 1), kMaxTokenSize);
  }
  static std::chrono::system_clock::time_point now() {
    return std::chrono::system_clock::time_point(std::chrono::seconds(1'700'000'000));
  }
};

void check(const Fixture& f, const std::string& token) {
  VerifyResult r = f.keys.verify(token, Fixture::now());
  if (!r.ok()) {
    if (r.message().empty()) std::abort();
    return;
  }
  if (token.size() > kMaxTokenSize || r.claims().hosts.empty() || r.claims().hosts.size() > kMaxTokenHosts)
    std::abort();
  for (const auto& h : r.claims().hosts) {
    if (!is_valid_host_pattern(h)) std::abort();
  }
  // Anything we accept we can issue again, and it verifies to the same claims.
  std::string again;
  try {
    again = f.key.sign(r.claims());
  } catch (const std::invalid_argument&) {
    return;  // e.g. an accepted token whose re-encoding (with different JSON escaping) exceeds 8 KiB
  }
  VerifyResult r2 = f.keys.verify(again, Fixture::now());
  if (!r2.ok() || !(r2.claims() == r.claims())) std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const Fixture fixture;
  if (size == 0 || size > 2 * kMaxTokenSize) return 0;
  std::string_view rest(reinterpret_cast<const char*>(data) + 1, size - 1);

  if (auto decoded = base64url_decode(rest, kMaxTokenSize); decoded && base64url_encode(*decoded) != rest) {
    std::abort();
  }
  TokenClaims probe;
  probe.hosts = {"*.fuzz.localhost", "exact.localhost"};
  (void)token_covers_host(probe, rest);
  (void)parse_bearer(rest);
  (void)parse_duration(rest);

  switch (data[0] % 3) {
    case 0:
      check(fixture, std::string(rest));
      break;
    case 1:
      check(fixture, fixture.key.sign_jws(R"({"alg":"ES256","kid":")" + fixture.key.kid() + "\"}", rest));
      break;
    default:
      check(fixture, fixture.key.sign_jws(rest, fixture.payload));
      break;
  }
  return 0;
}
