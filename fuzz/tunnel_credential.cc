// libFuzzer target for agent credentials (tunnel/credential.h). The first byte picks what the rest
// is: a credential file's text (Credential::parse), a whole session token, a session-token payload
// signed by the fixture's agent key, or a grant carried in a session token's header (so the parsers
// behind each signature check are reached). Anything accepted must hold what the verifier promises.
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

#include "tunnel/credential.h"
#include "tunnel/revocation.h"

namespace {

using namespace wtmesh::tunnel;
using json = nlohmann::json;

std::chrono::system_clock::time_point now() {
  return std::chrono::system_clock::time_point(std::chrono::seconds(1'700'000'000));
}

struct Fixture {
  SigningKey edge = SigningKey::generate();
  VerifierKeySet keys;
  Credential cred =
      Credential::issue(edge, "fuzz", {"fuzz.localhost"}, {"db.localhost"}, std::chrono::hours(24), now());
  SigningKey agent = SigningKey::from_pem(json::parse(cred.to_json())["key"].get<std::string>());
  Fixture() { keys.add_pem(edge.public_pem()); }
};

void check(const Fixture& f, std::string_view token) {
  VerifyResult r = verify_session_token(token, f.keys, now(), std::chrono::seconds(300));
  if (!r.ok()) {
    if (r.message().empty()) std::abort();
    return;
  }
  const TokenClaims& c = r.claims();
  if (c.credential_id != f.cred.id() || c.subject != "fuzz" || c.hosts != f.cred.scope().hosts) std::abort();
  if (c.expires_at - c.issued_at > std::chrono::seconds(300) || c.expires_at > f.cred.expires_at())
    std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const Fixture f;
  if (size == 0 || size > 2 * kMaxCredentialFile) return 0;
  const std::string_view rest(reinterpret_cast<const char*>(data) + 1, size - 1);
  (void)is_session_token(rest);
  switch (data[0] % 5) {
    case 0: {
      std::string why;
      auto c = Credential::parse(rest, &why);
      if (!c && why.empty()) std::abort();
      if (c && !is_valid_credential_id(c->id())) std::abort();
      break;
    }
    case 1:
      check(f, rest);
      break;
    case 2: {
      const json header = {{"alg", "ES256"}, {"typ", "wtmesh-session"}, {"grant", f.cred.grant()}};
      check(f, f.agent.sign_jws(header.dump(), rest));
      break;
    }
    case 3: {
      const json header = {{"alg", "ES256"}, {"typ", "wtmesh-session"}, {"grant", std::string(rest)}};
      const json payload = {{"sub", "fuzz"},        {"aud", "wtmesh-edge"}, {"iat", 1'700'000'000},
                            {"nbf", 1'700'000'000}, {"exp", 1'700'000'060}, {"jti", "j"},
                            {"cid", f.cred.id()}};
      std::string h;
      try {
        h = header.dump();
      } catch (const json::exception&) {
        return 0;  // not UTF-8
      }
      check(f, f.agent.sign_jws(h, payload.dump()));
      break;
    }
    default: {
      try {
        RevocationList l = RevocationList::parse(rest);
        if (l.size() > RevocationList::kMaxEntries) std::abort();
      } catch (const std::length_error&) {
      }
      break;
    }
  }
  return 0;
}
