// Shorthands the verifiers share (token.cc, credential.cc). Internal to tunnel/.
#pragma once

#include <chrono>
#include <string>
#include <utility>

#include "tunnel/token.h"

namespace wtmesh::tunnel::detail {

inline VerifyResult fail(TokenError e, std::string message) {
  return VerifyResult::failure(e, std::move(message));
}

// "12 s": how far a token is from being valid, for its error message.
inline std::string seconds_text(std::chrono::system_clock::duration d) {
  return std::to_string(std::chrono::duration_cast<std::chrono::seconds>(d).count()) + " s";
}

}  // namespace wtmesh::tunnel::detail
