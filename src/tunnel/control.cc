#include "tunnel/control.h"

#include <cstdio>
#include <limits>
#include <nlohmann/json.hpp>

namespace wtmesh::tunnel {
namespace {

using json = nlohmann::json;

template <typename... F>
struct Overloaded : F... {
  using F::operator()...;
};
template <typename... F>
Overloaded(F...) -> Overloaded<F...>;

// At most kMaxControlText bytes, not ending inside a UTF-8 sequence.
std::string clip(std::string_view s) {
  if (s.size() <= kMaxControlText) return std::string(s);
  size_t n = kMaxControlText;
  while (n > 0 && (static_cast<unsigned char>(s[n]) & 0xc0) == 0x80) --n;
  return std::string(s.substr(0, n));
}

std::vector<uint8_t> frame(ControlType type, const json& j) {
  // `replace`: text that is not UTF-8 is sent with U+FFFD instead of throwing.
  return encode_control_frame(type, j.dump(-1, ' ', false, json::error_handler_t::replace));
}

// A required unsigned member.
template <typename T>
ControlError get_uint(const json& j, const char* key, T& out) {
  auto it = j.find(key);
  if (it == j.end()) return ControlError::kMissingField;
  if (it->is_number_integer() && !it->is_number_unsigned()) return ControlError::kOutOfRange;  // negative
  if (!it->is_number_unsigned()) return ControlError::kWrongType;
  const auto v = it->get<uint64_t>();
  if (v > std::numeric_limits<T>::max()) return ControlError::kOutOfRange;
  out = static_cast<T>(v);
  return ControlError::kNone;
}

// A text member: "" when absent or not a string.
std::string get_text(const json& j, const char* key) {
  auto it = j.find(key);
  return it != j.end() && it->is_string() ? it->get<std::string>() : std::string();
}

}  // namespace

ControlType type_of(const ControlMessage& message) {
  return std::visit(Overloaded{
                        [](const Register&) { return ControlType::kRegister; },
                        [](const Registered&) { return ControlType::kRegistered; },
                        [](const Refused&) { return ControlType::kRefused; },
                        [](const Unregister&) { return ControlType::kUnregister; },
                        [](const Ping&) { return ControlType::kPing; },
                        [](const Pong&) { return ControlType::kPong; },
                        [](const Renew&) { return ControlType::kRenew; },
                        [](const Renewed&) { return ControlType::kRenewed; },
                    },
                    message);
}

std::string control_name(uint64_t type) {
  switch (static_cast<ControlType>(type)) {
    case ControlType::kRegister:
      return "REGISTER";
    case ControlType::kRegistered:
      return "REGISTERED";
    case ControlType::kRefused:
      return "REFUSED";
    case ControlType::kUnregister:
      return "UNREGISTER";
    case ControlType::kPing:
      return "PING";
    case ControlType::kPong:
      return "PONG";
    case ControlType::kRenew:
      return "RENEW";
    case ControlType::kRenewed:
      return "RENEWED";
  }
  char buf[40];
  std::snprintf(buf, sizeof(buf), "control frame 0x%llx", static_cast<unsigned long long>(type));
  return buf;
}

ControlSender sender_of(ControlType type) {
  switch (type) {
    case ControlType::kRegister:
    case ControlType::kUnregister:
    case ControlType::kRenew:
      return ControlSender::kAgent;
    case ControlType::kRegistered:
    case ControlType::kRefused:
    case ControlType::kRenewed:
      return ControlSender::kEdge;
    case ControlType::kPing:
    case ControlType::kPong:
      return ControlSender::kEither;
  }
  return ControlSender::kEither;
}

std::vector<uint8_t> encode(const ControlMessage& message) {
  return std::visit(Overloaded{
                        [](const Register& m) {
                          json options = json::object();
                          if (m.remote_port != 0) options["remote_port"] = m.remote_port;
                          if (m.private_only) options["private"] = true;
                          if (!m.visitor.empty()) options["visitor"] = encode_visitor_policy(m.visitor);
                          return frame(ControlType::kRegister, json{{"id", m.id},
                                                                    {"type", clip(m.type)},
                                                                    {"hostname", clip(m.hostname)},
                                                                    {"options", std::move(options)}});
                        },
                        [](const Registered& m) {
                          return frame(
                              ControlType::kRegistered,
                              json{{"id", m.id}, {"hostname", clip(m.hostname)}, {"url", clip(m.url)}});
                        },
                        [](const Refused& m) {
                          return frame(ControlType::kRefused, json{{"id", m.id},
                                                                   {"hostname", clip(m.hostname)},
                                                                   {"code", clip(m.code)},
                                                                   {"message", clip(m.message)}});
                        },
                        [](const Unregister& m) {
                          return frame(ControlType::kUnregister, json{{"id", m.id}});
                        },
                        [](const Ping& m) {
                          return frame(ControlType::kPing, json{{"seq", m.seq}});
                        },
                        [](const Pong& m) {
                          return frame(ControlType::kPong, json{{"seq", m.seq}});
                        },
                        [](const Renew& m) {
                          return frame(ControlType::kRenew, json{{"seq", m.seq}, {"token", m.token}});
                        },
                        [](const Renewed& m) {
                          json j{{"seq", m.seq}};
                          if (m.error.empty()) {
                            j["exp"] = m.expires;
                          } else {
                            j["error"] = clip(m.error);
                          }
                          return frame(ControlType::kRenewed, j);
                        },
                    },
                    message);
}

const char* to_string(ControlError e) {
  switch (e) {
    case ControlError::kNone:
      return "ok";
    case ControlError::kUnknownType:
      return "unknown frame type";
    case ControlError::kMalformedJson:
      return "payload is not JSON";
    case ControlError::kNotAnObject:
      return "payload is not a JSON object";
    case ControlError::kMissingField:
      return "is missing";
    case ControlError::kWrongType:
      return "is not an unsigned integer";
    case ControlError::kOutOfRange:
      return "is out of range";
  }
  return "?";
}

std::string ControlDecode::describe() const {
  if (ok()) return control_name(static_cast<uint64_t>(type_of(*message_)));
  std::string out = control_name(type_) + ": ";
  if (!field_.empty()) out += "\"" + field_ + "\" ";
  return out + to_string(error_);
}

namespace {

// REGISTER's options (§3.1): absent members read as their defaults; a `remote_port` that is not a
// port number reads as Register::kBadPort, which the edge refuses as `invalid`.
Register decode_register(const json& j, uint32_t id) {
  Register r{id, get_text(j, "type"), get_text(j, "hostname")};
  const auto opts = j.find("options");
  if (opts == j.end() || !opts->is_object()) return r;
  if (const auto port = opts->find("remote_port"); port != opts->end()) {
    r.remote_port = Register::kBadPort;
    if (port->is_number_unsigned()) {
      const uint64_t v = port->get<uint64_t>();
      if (v >= 1 && v <= 65535) r.remote_port = static_cast<uint32_t>(v);
    }
  }
  if (const auto priv = opts->find("private"); priv != opts->end() && priv->is_boolean())
    r.private_only = priv->get<bool>();
  if (const auto visitor = opts->find("visitor"); visitor != opts->end()) {
    if (auto p = decode_visitor_policy(*visitor, &r.visitor_error)) r.visitor = std::move(*p);
  }
  return r;
}

}  // namespace

ControlDecode decode(const ControlFrame& frame) {
  const auto type = static_cast<ControlType>(frame.type);
  switch (type) {
    case ControlType::kRegister:
    case ControlType::kRegistered:
    case ControlType::kRefused:
    case ControlType::kUnregister:
    case ControlType::kPing:
    case ControlType::kPong:
    case ControlType::kRenew:
    case ControlType::kRenewed:
      break;
    default:
      return ControlDecode(frame.type, ControlError::kUnknownType);
  }
  const json j = json::parse(frame.payload, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return ControlDecode(frame.type, ControlError::kMalformedJson);
  if (!j.is_object()) return ControlDecode(frame.type, ControlError::kNotAnObject);

  // Every type has one required number: PING and PONG their u64 `seq`, the others their u32 `id`.
  const bool by_seq = type == ControlType::kPing || type == ControlType::kPong || type == ControlType::kRenew ||
                      type == ControlType::kRenewed;
  uint64_t seq = 0;
  uint32_t id = 0;
  const ControlError e = by_seq ? get_uint(j, "seq", seq) : get_uint(j, "id", id);
  if (e != ControlError::kNone) return ControlDecode(frame.type, e, by_seq ? "seq" : "id");

  switch (type) {
    case ControlType::kRegister:
      return ControlDecode(decode_register(j, id));
    case ControlType::kRegistered:
      return ControlDecode(Registered{id, get_text(j, "hostname"), get_text(j, "url")});
    case ControlType::kRefused:
      return ControlDecode(Refused{id, get_text(j, "hostname"), get_text(j, "code"), get_text(j, "message")});
    case ControlType::kUnregister:
      return ControlDecode(Unregister{id});
    case ControlType::kPing:
      return ControlDecode(Ping{seq});
    case ControlType::kPong:
      return ControlDecode(Pong{seq});
    case ControlType::kRenew:
      return ControlDecode(Renew{seq, get_text(j, "token")});
    case ControlType::kRenewed: {
      // `exp` is present when accepted; a RENEWED with neither exp nor error is a refusal without reason.
      uint64_t exp = 0;
      const ControlError e = get_uint(j, "exp", exp);
      if (e != ControlError::kNone && e != ControlError::kMissingField) return ControlDecode(frame.type, e, "exp");
      Renewed r{seq, exp, get_text(j, "error")};
      if (r.expires == 0 && r.error.empty()) r.error = "refused";
      return ControlDecode(std::move(r));
    }
  }
  return ControlDecode(frame.type, ControlError::kUnknownType);
}

}  // namespace wtmesh::tunnel
