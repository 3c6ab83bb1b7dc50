// The HTTP/2 UpstreamCodec: one request on one stream of a shared HTTP/2 connection (the stream is
// the transport: agent/h2_upstream_driver.h; the connection's framing, HPACK and flow control are
// agent/h2_upstream_session.h's). What passes between this codec and its stream transport is the
// tunnel's own head encoding (tunnel/wire.h) followed by raw body bytes, both ways:
//  - request: write_head() is the request head translated for HTTP/2 (encode_request_open: method,
//    target, authority = the public authority, header fields lower-case with hop-by-hop ones dropped,
//    `te` only as `te: trailers`); body bytes unframed; the end of the body is the transport's
//    write_last() (END_STREAM), so write_end() writes nothing;
//  - response: the stream transport delivers interim (1xx) heads and the upstream's final head as
//    encode_response_head (has_body = no END_STREAM on the HEADERS), then the DATA bytes either raw or,
//    when the head has the `framed` flag, as a framed body ending with the trailer section
//    (tunnel/framed_body.h), then EOF at END_STREAM. The codec checks the head (hop-by-hop fields
//    dropped, content-length parsed, HEAD/204/304 bodiless), produces interim heads as kHead, passes
//    the body through and keeps the trailers (take_trailers). The stream's end is the response's end.
// reusable() is "the stream ended cleanly": the transport's release() then just forgets the stream.
// A WebSocket request (GET + upgrade: websocket) becomes an RFC 8441 extended CONNECT: see upgrade().
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "agent/upstream_codec.h"
#include "tunnel/framed_body.h"
#include "tunnel/wire.h"

namespace wtmesh::agent {

class H2Codec final : public UpstreamCodec {
 public:
  static constexpr size_t kInputCap = 64 * 1024;

  // `protocol` names the upstream's version in messages ("HTTP/2", "HTTP/3": the same semantics; for
  // HTTP/3 the stream transport's FIN is the end, and a WebSocket is RFC 9220's extended CONNECT).
  explicit H2Codec(std::string protocol = "HTTP/2") : protocol_(std::move(protocol)) {}

  bool start_request(const tunnel::RequestHead& head, std::string* error) override;
  void write_head(std::string& out) const override;
  void write_body(std::string& out, std::span<const uint8_t> data) const override;
  void write_end(std::string& /*out*/) const override {}
  bool end_by_fin() const override { return true; }

  size_t input_room() const override;
  void put_input(std::span<const uint8_t> data) override;
  void put_eof() override { eof_ = true; }
  Status decode(std::vector<uint8_t>& body, size_t max_body) override;
  tunnel::ResponseHead take_head() override { return std::move(head_); }
  bool head_produced() const override { return head_produced_; }
  const std::string& error() const override { return error_; }
  bool reusable() const override { return done_ && error_.empty(); }
  void restart_response() override;
  // A WebSocket (RFC 6455 request): sent as an RFC 8441 extended CONNECT (method CONNECT in the head
  // given to the stream transport, which adds `:protocol: websocket`); a 200 becomes the 101.
  bool upgrade() const override { return upgrade_; }
  bool switched() const override { return switched_; }
  bool may_have_trailers() const override { return body_ && body_allowed_; }
  tunnel::HeaderPairs take_trailers() override { return std::move(trailers_); }

  // The translated request (for tests).
  const tunnel::RequestHead& request() const { return request_; }

 private:
  Status fail(std::string why);

  std::string protocol_;
  tunnel::RequestHead request_;
  bool upgrade_ = false;
  bool switched_ = false;
  std::string ws_key_;
  bool head_request_ = false;
  std::vector<uint8_t> in_;
  size_t in_pos_ = 0;
  bool eof_ = false;
  std::optional<tunnel::HeadReader<tunnel::ResponseHead>> reader_;
  bool head_produced_ = false;
  bool head_taken_ = false;
  bool body_allowed_ = true;
  bool done_ = false;
  tunnel::ResponseHead head_;
  std::optional<tunnel::FramedBodyReader> body_;  // the head was framed
  tunnel::HeaderPairs trailers_;
  std::vector<std::span<const uint8_t>> pieces_;
  std::string error_;
};

}  // namespace wtmesh::agent
