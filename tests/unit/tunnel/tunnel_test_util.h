// Shared helpers for the tunnel token tests: a fixed clock, claims, and hand-built tokens.
#pragma once

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>

#include "tunnel/base64url.h"
#include "tunnel/token.h"
#include "../../support/temp_dir.h"

namespace wtmesh::tunnel::test {

using json = nlohmann::json;
using Clock = std::chrono::system_clock;
using namespace std::chrono_literals;

inline const Clock::time_point kNow = Clock::time_point(std::chrono::seconds(1'700'000'000));

inline TokenClaims sample_claims(Clock::time_point now = kNow, std::chrono::seconds ttl = 600s) {
  return make_claims("alice", {"alice.localhost", "*.alice.localhost"}, ttl, now);
}

inline json header_json(std::string_view kid) { return {{"alg", "ES256"}, {"typ", "JWT"}, {"kid", kid}}; }

inline json payload_json(const TokenClaims& c) {
  auto secs = [](Clock::time_point t) {
    return std::chrono::duration_cast<std::chrono::seconds>(t.time_since_epoch()).count();
  };
  return {{"sub", c.subject},          {"aud", c.audience},         {"iat", secs(c.issued_at)},
          {"nbf", secs(c.not_before)}, {"exp", secs(c.expires_at)}, {"jti", c.id},
          {"hosts", c.hosts}};
}

// A token with the given header and payload JSON texts, signed by `key`.
inline std::string craft(const SigningKey& key, const json& header, const json& payload) {
  return key.sign_jws(header.dump(), payload.dump());
}

// Splits a compact token into its three parts.
struct Parts {
  std::string header, payload, signature;
};
inline Parts split(const std::string& token) {
  size_t a = token.find('.'), b = token.find('.', a + 1);
  return {token.substr(0, a), token.substr(a + 1, b - a - 1), token.substr(b + 1)};
}

inline std::string slurp(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

inline void spit(const std::filesystem::path& p, const std::string& data) {
  std::ofstream out(p, std::ios::binary | std::ios::trunc);
  out << data;
}

inline unsigned mode_of(const std::filesystem::path& p) {
  struct stat st {};
  EXPECT_EQ(::stat(p.c_str(), &st), 0) << p;
  return st.st_mode & 0777;
}

using wtmesh::test::TempDir;

}  // namespace wtmesh::tunnel::test
