// ES256 JWT signing and verification (see token.h for the rules and why they are this strict).
#include "tunnel/token.h"

#include <algorithm>
#include <stdexcept>
#include <system_error>

#include "common/files.h"
#include "common/text.h"
#include "tunnel/base64url.h"
#include "tunnel/claims_json.h"
#include "tunnel/verify_util.h"

namespace wtmesh::tunnel {

using detail::fail;
using detail::seconds_text;
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::system_clock;

constexpr std::string_view kPubSuffix = ".pub.pem";
constexpr size_t kMaxKidSize = 64;

// Header values are attacker-chosen; keep them from injecting anything into logs.
std::string sanitized(std::string_view s, size_t max) {
  std::string out(s.substr(0, max));
  for (char& c : out) {
    if (!is_base64url_char(c)) c = '?';
  }
  return out;
}

}  // namespace

const char* to_string(TokenError e) {
  switch (e) {
    case TokenError::kMalformed:
      return "malformed";
    case TokenError::kUnsupportedAlg:
      return "unsupported_alg";
    case TokenError::kUnknownKey:
      return "unknown_key";
    case TokenError::kBadSignature:
      return "bad_signature";
    case TokenError::kExpired:
      return "expired";
    case TokenError::kNotYetValid:
      return "not_yet_valid";
    case TokenError::kWrongAudience:
      return "wrong_audience";
    case TokenError::kRevoked:
      return "revoked";
    case TokenError::kReplayed:
      return "replayed";
  }
  return "unknown";
}

VerifyResult VerifyResult::success(TokenClaims claims, std::string kid) {
  VerifyResult r;
  r.claims_ = std::move(claims);
  r.kid_ = std::move(kid);
  return r;
}

VerifyResult VerifyResult::failure(TokenError error, std::string message) {
  VerifyResult r;
  r.error_ = error;
  r.message_ = std::move(message);
  return r;
}

// --- SigningKey ----------------------------------------------------------------------------------

SigningKey SigningKey::generate() { return SigningKey(es256::PrivateKey::generate()); }

SigningKey SigningKey::from_pem(std::string_view pem) { return SigningKey(es256::PrivateKey::from_pem(pem)); }

SigningKey SigningKey::load(const fs::path& pem_file) {
  auto pem = files::read_small_file(pem_file);
  if (!pem) throw std::runtime_error(pem_file.string() + ": no such file");
  try {
    return from_pem(*pem);
  } catch (const std::runtime_error& e) {
    throw std::runtime_error(pem_file.string() + ": " + e.what());
  }
}

void SigningKey::save(const fs::path& pem_file) const {
  files::write_file_atomic(pem_file, private_pem(), 0600);
}

std::string SigningKey::sign(const TokenClaims& claims) const {
  std::string payload = detail::claims_to_json(claims);
  nlohmann::json header = {{"alg", "ES256"}, {"typ", "JWT"}, {"kid", kid()}};
  std::string token = sign_jws(header.dump(), payload);
  if (token.size() > kMaxTokenSize) {
    throw std::invalid_argument("token would be " + std::to_string(token.size()) + " bytes, over the " +
                                std::to_string(kMaxTokenSize) + "-byte limit (too many or too long hosts)");
  }
  return token;
}

std::string SigningKey::sign_jws(std::string_view header_json, std::string_view payload_json) const {
  std::string input = base64url_encode(header_json) + "." + base64url_encode(payload_json);
  std::string sig = key_.sign(input);
  return input + "." + base64url_encode(sig);
}

// --- VerifierKeySet ------------------------------------------------------------------------------

VerifierKeySet VerifierKeySet::load_dir(const fs::path& dir) {
  VerifierKeySet set;
  std::error_code ec;
  fs::directory_iterator it(dir, ec);
  if (ec) throw std::runtime_error(dir.string() + ": cannot list key directory: " + ec.message());
  std::vector<fs::path> paths;
  for (; it != fs::directory_iterator(); it.increment(ec)) {
    std::string name = it->path().filename().string();
    if (name.size() > kPubSuffix.size() && name.ends_with(kPubSuffix)) paths.push_back(it->path());
    if (paths.size() > kMaxVerifierKeys) {
      throw std::runtime_error(dir.string() + ": more than " + std::to_string(kMaxVerifierKeys) +
                               " public keys");
    }
  }
  if (ec) throw std::runtime_error(dir.string() + ": cannot list key directory: " + ec.message());
  std::sort(paths.begin(), paths.end());
  for (const auto& path : paths) {
    auto pem = files::read_small_file(path);
    if (!pem) continue;  // removed (retired) while we listed
    std::string why;
    auto key = es256::PublicKey::from_pem(*pem, &why);
    if (!key) throw std::runtime_error(path.string() + ": " + why);
    std::string name = path.filename().string();
    if (name.substr(0, name.size() - kPubSuffix.size()) != key->kid()) {
      throw std::runtime_error(path.string() + ": holds the key with kid " + key->kid() +
                               ", not the one its name says");
    }
    set.keys_.emplace(key->kid(), std::move(*key));
  }
  return set;
}

std::string VerifierKeySet::add_pem(std::string_view public_pem) {
  std::string why;
  auto key = es256::PublicKey::from_pem(public_pem, &why);
  if (!key) throw std::invalid_argument("verifier key: " + why);
  std::string kid = key->kid();
  if (contains(kid)) return kid;
  if (keys_.size() >= kMaxVerifierKeys) {
    throw std::length_error("verifier key set already holds " + std::to_string(kMaxVerifierKeys) + " keys");
  }
  keys_.emplace(kid, std::move(*key));
  return kid;
}

bool VerifierKeySet::remove(std::string_view kid) {
  auto it = keys_.find(kid);
  if (it == keys_.end()) return false;
  keys_.erase(it);
  return true;
}

std::vector<std::string> VerifierKeySet::kids() const {
  std::vector<std::string> out;
  for (const auto& [kid, key] : keys_) out.push_back(kid);
  return out;
}

VerifyResult VerifierKeySet::verify(std::string_view token, Clock::time_point now,
                                    std::chrono::seconds leeway, std::string_view audience) const {
  leeway = std::clamp(leeway, std::chrono::seconds(0), kMaxLeeway);
  if (token.size() > kMaxTokenSize) {
    return fail(TokenError::kMalformed, "token is longer than " + std::to_string(kMaxTokenSize) + " bytes");
  }
  size_t dot1 = token.find('.');
  size_t dot2 = dot1 == std::string_view::npos ? dot1 : token.find('.', dot1 + 1);
  if (dot2 == std::string_view::npos || token.find('.', dot2 + 1) != std::string_view::npos) {
    return fail(TokenError::kMalformed, "token is not three dot-separated parts (compact JWS)");
  }
  std::string_view header_b64 = token.substr(0, dot1);
  std::string_view payload_b64 = token.substr(dot1 + 1, dot2 - dot1 - 1);
  std::string_view sig_b64 = token.substr(dot2 + 1);

  // 1. Header: only what is needed to choose the key. Nothing in it is trusted beyond alg and kid.
  auto header_text = base64url_decode(header_b64, kMaxTokenSize);
  if (!header_text) return fail(TokenError::kMalformed, "token header is not canonical base64url");
  std::string why;
  auto header = detail::parse_json_object(*header_text, &why);
  if (!header) return fail(TokenError::kMalformed, "token header: " + why);
  auto alg = header->find("alg");
  if (alg == header->end() || !alg->is_string())
    return fail(TokenError::kMalformed, "token header has no alg string");
  if (alg->get_ref<const std::string&>() != "ES256") {
    return fail(TokenError::kUnsupportedAlg, "token alg \"" +
                                                 sanitized(alg->get_ref<const std::string&>(), 16) +
                                                 "\" is not supported (only ES256)");
  }
  if (auto typ = header->find("typ");
      typ != header->end() && (!typ->is_string() || !iequals(typ->get_ref<const std::string&>(), "JWT"))) {
    return fail(TokenError::kMalformed, "token typ is not \"JWT\"");
  }
  if (header->contains("crit"))
    return fail(TokenError::kMalformed, "token header has crit; no extensions are supported");
  auto kid_it = header->find("kid");
  if (kid_it == header->end()) return fail(TokenError::kUnknownKey, "token header has no kid");
  if (!kid_it->is_string() || kid_it->get_ref<const std::string&>().size() > kMaxKidSize) {
    return fail(TokenError::kMalformed, "token kid is not a short string");
  }
  const auto& kid = kid_it->get_ref<const std::string&>();
  auto key = keys_.find(kid);
  if (key == keys_.end())
    return fail(TokenError::kUnknownKey,
                "token key \"" + sanitized(kid, kMaxKidSize) + "\" is not accepted here");

  // 2. Signature over the exact transmitted "header.payload" bytes, before the payload is looked at.
  auto sig = base64url_decode(sig_b64, kMaxTokenSize);
  if (!sig) return fail(TokenError::kMalformed, "token signature is not canonical base64url");
  if (sig->size() != es256::kSignatureSize) {
    return fail(TokenError::kBadSignature,
                "token signature is " + std::to_string(sig->size()) + " bytes, not the 64-byte ES256 r||s");
  }
  if (!key->second.verify(token.substr(0, dot2), *sig)) {
    return fail(TokenError::kBadSignature, "token signature does not verify with key " + kid);
  }

  // 3. Claims.
  auto payload_text = base64url_decode(payload_b64, kMaxTokenSize);
  if (!payload_text) return fail(TokenError::kMalformed, "token payload is not canonical base64url");
  auto payload = detail::parse_json_object(*payload_text, &why);
  if (!payload) return fail(TokenError::kMalformed, "token payload: " + why);
  auto claims = detail::claims_from_json(*payload, &why);
  if (!claims) return fail(TokenError::kMalformed, "token claims: " + why);
  if (claims->audience != audience) {
    return fail(TokenError::kWrongAudience, "token audience is not \"" + std::string(audience) + "\"");
  }
  if (now < claims->not_before - leeway) {
    return fail(TokenError::kNotYetValid,
                "token is not valid for another " + seconds_text(claims->not_before - now));
  }
  if (claims->issued_at > now + leeway) {
    return fail(TokenError::kNotYetValid,
                "token was issued " + seconds_text(claims->issued_at - now) + " in the future");
  }
  if (now >= claims->expires_at + leeway) {
    return fail(TokenError::kExpired, "token expired " + seconds_text(now - claims->expires_at) + " ago");
  }
  return VerifyResult::success(std::move(*claims), kid);
}

}  // namespace wtmesh::tunnel
