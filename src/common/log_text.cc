#include "common/log_text.h"

#include <algorithm>
#include <array>

namespace wtmesh {
namespace {

constexpr std::array<std::string_view, 3> kCredentialParams = {"token", "wtmesh_token", "access_token"};

bool is_credential_param(std::string_view name) {
  for (const std::string_view p : kCredentialParams) {
    if (name.size() != p.size()) continue;
    bool same = true;
    for (size_t i = 0; i < p.size() && same; ++i) {
      const char c = name[i] >= 'A' && name[i] <= 'Z' ? static_cast<char>(name[i] - 'A' + 'a') : name[i];
      same = c == p[i];
    }
    if (same) return true;
  }
  return false;
}

}  // namespace

std::string log_text(std::string_view s, size_t max) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  out.reserve(std::min(s.size(), max) + 8);
  for (const char ch : s) {
    const auto c = static_cast<unsigned char>(ch);
    const size_t width = c == '\\' ? 2 : (c < 0x20 || c >= 0x7f) ? 4 : 1;
    if (out.size() + width > max) {
      out += "...(" + std::to_string(s.size()) + " bytes)";
      return out;
    }
    if (c == '\\') {
      out += "\\\\";
    } else if (width == 4) {
      out += "\\x";
      out += kHex[c >> 4];
      out += kHex[c & 0xf];
    } else {
      out += ch;
    }
  }
  return out;
}

std::string log_target(std::string_view target, size_t max) {
  const size_t q = target.find('?');
  if (q == std::string_view::npos) return log_text(target, max);
  std::string redacted(target.substr(0, q + 1));
  std::string_view query = target.substr(q + 1);
  // A fragment is not sent by clients, but a raw target may hold anything: redact up to the end.
  bool first = true;
  while (true) {
    const size_t amp = query.find('&');
    const std::string_view param = query.substr(0, amp);
    const size_t eq = param.find('=');
    if (!first) redacted += '&';
    first = false;
    if (eq != std::string_view::npos && is_credential_param(param.substr(0, eq))) {
      redacted.append(param.substr(0, eq + 1)).append("REDACTED");
    } else {
      redacted.append(param);
    }
    if (amp == std::string_view::npos) break;
    query.remove_prefix(amp + 1);
  }
  return log_text(redacted, max);
}

bool LogBudget::allow(SteadyTime now) {
  if (!started_) {
    started_ = true;
    tokens_ = burst_;
  }
  if (tokens_ >= burst_) {
    refilled_ = now;  // a full bucket: refills count from its first use
  } else if (interval_.count() > 0 && now > refilled_) {
    const auto steps = static_cast<uint64_t>((now - refilled_) / interval_);
    if (steps > 0) {
      tokens_ = static_cast<size_t>(std::min<uint64_t>(burst_, tokens_ + steps));
      refilled_ += std::chrono::duration_cast<SteadyTime::duration>(interval_ * steps);
    }
  }
  if (tokens_ == 0) {
    ++suppressed_;
    return false;
  }
  --tokens_;
  return true;
}

std::string LogBudget::suppressed_note() {
  const uint64_t n = take_suppressed();
  return n == 0 ? std::string() : " (" + std::to_string(n) + " similar lines suppressed)";
}

}  // namespace wtmesh
