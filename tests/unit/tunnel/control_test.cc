// The typed control messages: byte vectors pinning the v1 encoding (what agents and edges before
// them wrote by hand), round trips, and every decode error.
#include "tunnel/control.h"

#include <gtest/gtest.h>

#include "common/varint.h"

namespace wtmesh::tunnel {
namespace {

// type, length (as given), then the JSON text.
std::vector<uint8_t> frame_bytes(std::initializer_list<int> header, std::string_view json) {
  std::vector<uint8_t> out;
  for (int b : header) out.push_back(static_cast<uint8_t>(b));
  out.insert(out.end(), json.begin(), json.end());
  return out;
}

ControlFrame as_frame(const std::vector<uint8_t>& wire) {
  ControlReader r;
  std::vector<ControlFrame> frames;
  EXPECT_EQ(r.feed(wire, frames), WireError::kNone);
  EXPECT_EQ(frames.size(), 1u);
  return frames.empty() ? ControlFrame{} : frames[0];
}

ControlDecode decode_json(ControlType type, std::string_view json) {
  return decode(ControlFrame{static_cast<uint64_t>(type), std::string(json)});
}

TEST(ControlMessages, V1ByteVectors) {
  EXPECT_EQ(encode(Register{7, "http", "app.localhost"}),
            frame_bytes({0x01, 0x3e}, R"({"hostname":"app.localhost","id":7,"options":{},"type":"http"})"));
  EXPECT_EQ(encode(Registered{3, "app.localhost", "https://app.localhost:8443/"}),
            frame_bytes({0x02, 0x40, 0x47},
                        R"({"hostname":"app.localhost","id":3,"url":"https://app.localhost:8443/"})"));
  EXPECT_EQ(encode(Refused{2, "app.localhost", "taken", "app.localhost is served by another agent"}),
            frame_bytes({0x03, 0x40, 0x67}, R"({"code":"taken","hostname":"app.localhost","id":2,)"
                                            R"("message":"app.localhost is served by another agent"})"));
  EXPECT_EQ(encode(Unregister{4294967295u}), frame_bytes({0x04, 0x11}, R"({"id":4294967295})"));
  EXPECT_EQ(encode(Ping{18446744073709551615ull}),
            frame_bytes({0x05, 0x1c}, R"({"seq":18446744073709551615})"));
  EXPECT_EQ(encode(Pong{0}), frame_bytes({0x06, 0x09}, R"({"seq":0})"));
  EXPECT_EQ(type_of(Refused{}), ControlType::kRefused);
}

TEST(ControlMessages, TcpRegisterOptions) {
  EXPECT_EQ(encode(Register{1, "tcp", "db.localhost", 20042, false}),
            frame_bytes({0x01, 0x40, 0x4f}, R"({"hostname":"db.localhost","id":1,)"
                                            R"("options":{"remote_port":20042},"type":"tcp"})"));
  EXPECT_EQ(encode(Register{2, "tcp", "db.localhost", 0, true}),
            frame_bytes({0x01, 0x40, 0x4a},
                        R"({"hostname":"db.localhost","id":2,"options":{"private":true},"type":"tcp"})"));
  auto reg = [](std::string_view options) {
    const auto d = decode_json(ControlType::kRegister,
                               std::string(R"({"id":1,"type":"tcp","hostname":"db.localhost","options":)") +
                                   std::string(options) + "}");
    EXPECT_TRUE(d.ok()) << d.describe();
    return d.ok() ? *d.get<Register>() : Register{};
  };
  EXPECT_EQ(reg(R"({"remote_port":20042})").remote_port, 20042u);
  EXPECT_FALSE(reg(R"({"remote_port":20042})").private_only);
  EXPECT_TRUE(reg(R"({"private":true})").private_only);
  EXPECT_EQ(reg("{}").remote_port, 0u);
  EXPECT_EQ(reg("[]").remote_port, 0u) << "options that are no object are ignored";
  EXPECT_FALSE(reg(R"({"private":"yes"})").private_only) << "not a boolean: the default";
  for (const char* bad : {R"({"remote_port":0})", R"({"remote_port":65536})", R"({"remote_port":-1})",
                          R"({"remote_port":"22"})", R"({"remote_port":2.5})"}) {
    EXPECT_EQ(reg(bad).remote_port, Register::kBadPort) << bad;
  }
}

TEST(ControlMessages, RoundTripThroughTheReader) {
  const std::vector<ControlMessage> all = {
      Register{1, "http", "*.wild.localhost"},
      Registered{1, "*.wild.localhost", "https://wild.localhost/"},
      Refused{9, "x.localhost", "not_covered", "the token does not cover x.localhost"},
      Unregister{1},
      Ping{42},
      Pong{42},
  };
  for (const auto& m : all) {
    const ControlDecode d = decode(as_frame(encode(m)));
    ASSERT_TRUE(d) << d.describe();
    EXPECT_EQ(type_of(d.message()), type_of(m));
    EXPECT_EQ(encode(d.message()), encode(m)) << control_name(static_cast<uint64_t>(type_of(m)));
  }
  const ControlDecode tcp = decode(as_frame(encode(Register{5, "tcp", "db.localhost"})));
  const auto* reg = tcp.get<Register>();
  ASSERT_TRUE(reg);
  EXPECT_EQ(reg->id, 5u);
  EXPECT_EQ(reg->type, "tcp");
  EXPECT_EQ(reg->hostname, "db.localhost");
}

TEST(ControlMessages, UnknownMembersAreIgnored) {
  const ControlDecode d = decode_json(
      ControlType::kRefused,
      R"({"id":2,"hostname":"x","code":"taken","message":"m","future":{"deep":[1,2,{"x":null}]}})");
  ASSERT_TRUE(d);
  const auto* r = d.get<Refused>();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->code, "taken");
  EXPECT_EQ(r->message, "m");
  EXPECT_FALSE(d.get<Registered>());
}

TEST(ControlMessages, TextMembersAbsentOrNotStringsReadAsEmpty) {
  // As v1 edges and agents did: the receiver's own checks refuse what is left.
  const ControlDecode reg = decode_json(ControlType::kRegister, R"({"id":1,"hostname":5})");
  ASSERT_TRUE(reg);
  EXPECT_EQ(reg.get<Register>()->type, "") << "a REGISTER without a type is not http";
  EXPECT_EQ(reg.get<Register>()->hostname, "");
  const ControlDecode ok = decode_json(ControlType::kRegistered, R"({"id":1})");
  ASSERT_TRUE(ok);
  EXPECT_EQ(ok.get<Registered>()->url, "");
}

TEST(ControlMessages, DecodeErrors) {
  struct Case {
    ControlType type;
    const char* json;
    ControlError error;
    const char* field;
  };
  const Case cases[] = {
      {ControlType::kRegister, "{not json", ControlError::kMalformedJson, ""},
      {ControlType::kRegister, "", ControlError::kMalformedJson, ""},
      {ControlType::kRegister, "\"a string\"", ControlError::kNotAnObject, ""},
      {ControlType::kPing, "[1]", ControlError::kNotAnObject, ""},
      {ControlType::kRegister, R"({"hostname":"app.localhost"})", ControlError::kMissingField, "id"},
      {ControlType::kUnregister, R"({"id":"one"})", ControlError::kWrongType, "id"},
      {ControlType::kRegistered, R"({"id":1.5})", ControlError::kWrongType, "id"},
      {ControlType::kRefused, R"({"id":true})", ControlError::kWrongType, "id"},
      {ControlType::kUnregister, R"({"id":-1})", ControlError::kOutOfRange, "id"},
      {ControlType::kRegister, R"({"id":4294967296})", ControlError::kOutOfRange, "id"},
      {ControlType::kPing, "{}", ControlError::kMissingField, "seq"},
      {ControlType::kPong, R"({"seq":null})", ControlError::kWrongType, "seq"},
      {ControlType::kPing, R"({"seq":18446744073709551616})", ControlError::kWrongType, "seq"},  // a double
  };
  for (const auto& c : cases) {
    const ControlDecode d = decode_json(c.type, c.json);
    EXPECT_FALSE(d) << c.json;
    EXPECT_EQ(d.error(), c.error) << c.json;
    EXPECT_EQ(d.field(), c.field) << c.json;
  }
  EXPECT_EQ(decode_json(ControlType::kRegister, R"({"id":4294967296})").describe(),
            R"(REGISTER: "id" is out of range)");
  EXPECT_EQ(decode_json(ControlType::kPing, "{x").describe(), "PING: payload is not JSON");
  const ControlDecode unknown = decode(ControlFrame{0x3f, "{}"});
  EXPECT_EQ(unknown.error(), ControlError::kUnknownType);
  EXPECT_EQ(unknown.describe(), "control frame 0x3f: unknown frame type");
  // Bytes that are not UTF-8 are not JSON.
  EXPECT_EQ(decode_json(ControlType::kRegister, "{\"id\":1,\"hostname\":\"\xff\"}").error(),
            ControlError::kMalformedJson);
}

TEST(ControlMessages, LargestIdAndSeqDecode) {
  const ControlDecode id = decode_json(ControlType::kUnregister, R"({"id":4294967295})");
  ASSERT_TRUE(id.get<Unregister>());
  EXPECT_EQ(id.get<Unregister>()->id, 4294967295u);
  const ControlDecode seq = decode_json(ControlType::kPong, R"({"seq":18446744073709551615})");
  ASSERT_TRUE(seq.get<Pong>());
  EXPECT_EQ(seq.get<Pong>()->seq, 18446744073709551615ull);
}

TEST(ControlMessages, EncodingIsBoundedAndNeverThrows) {
  // A REFUSED echoing a 16 KiB hostname of control characters (each escaped as 6 bytes) stays
  // within the frame limit: text members are cut to kMaxControlText bytes.
  Refused r{1, std::string(kMaxControlPayload, '\x01'), "invalid", std::string(kMaxControlPayload, '"')};
  const auto wire = encode(r);
  const ControlFrame f = as_frame(wire);
  EXPECT_LE(f.payload.size(), kMaxControlPayload);
  const ControlDecode decoded = decode(f);
  const auto* back = decoded.get<Refused>();
  ASSERT_TRUE(back);
  EXPECT_EQ(back->hostname, std::string(kMaxControlText, '\x01'));
  EXPECT_EQ(back->message, std::string(kMaxControlText, '"'));

  // Cut at a UTF-8 boundary: 511 ASCII bytes then a 2-byte character that would straddle the cut.
  std::string host(kMaxControlText - 1, 'a');
  host += "\xc3\xa9tail";
  const ControlDecode cut_decoded = decode(as_frame(encode(Refused{1, host, "invalid", "m"})));
  const auto* cut = cut_decoded.get<Refused>();
  ASSERT_TRUE(cut);
  EXPECT_EQ(cut->hostname, std::string(kMaxControlText - 1, 'a'));

  // Text that is not UTF-8 (a hostname cut by the edge's own message code) is sent as U+FFFD.
  const std::string broken = std::string("\"") + "\xc3" + "\" is not a host name";
  const ControlDecode fixed_decoded = decode(as_frame(encode(Refused{1, "x", "invalid", broken})));
  const auto* fixed = fixed_decoded.get<Refused>();
  ASSERT_TRUE(fixed);
  EXPECT_EQ(fixed->message, "\"\xef\xbf\xbd\" is not a host name");
}

TEST(ControlMessages, NamesAndSenders) {
  EXPECT_EQ(control_name(0x01), "REGISTER");
  EXPECT_EQ(control_name(0x06), "PONG");
  EXPECT_EQ(sender_of(ControlType::kRegister), ControlSender::kAgent);
  EXPECT_EQ(sender_of(ControlType::kUnregister), ControlSender::kAgent);
  EXPECT_EQ(sender_of(ControlType::kRegistered), ControlSender::kEdge);
  EXPECT_EQ(sender_of(ControlType::kRefused), ControlSender::kEdge);
  EXPECT_EQ(sender_of(ControlType::kPing), ControlSender::kEither);
  EXPECT_EQ(sender_of(ControlType::kPong), ControlSender::kEither);
}

}  // namespace
}  // namespace wtmesh::tunnel
