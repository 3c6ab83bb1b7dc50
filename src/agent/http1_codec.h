// The HTTP/1.1 UpstreamCodec: the wire functions of upstream_http.h (request head, chunked framing)
// and its ResponseDecoder (Beast's response parser) behind the codec interface. A WebSocket opening
// handshake (upgrade()) writes no body framing and, after a 101, passes bytes through both ways.
#pragma once

#include <optional>
#include <string>

#include "agent/upstream_codec.h"
#include "agent/upstream_http.h"

namespace wtmesh::agent {

class Http1Codec final : public UpstreamCodec {
 public:
  explicit Http1Codec(ResponseDecoder::Limits limits = {}) : limits_(limits) {}

  bool start_request(const tunnel::RequestHead& head, std::string* error) override;
  void write_head(std::string& out) const override { out.append(request_head_); }
  void write_body(std::string& out, std::span<const uint8_t> data) const override;
  void write_end(std::string& out) const override;

  size_t input_room() const override { return decoder_->input_room(); }
  void put_input(std::span<const uint8_t> data) override { decoder_->put_input(data); }
  void put_eof() override { decoder_->put_eof(); }
  Status decode(std::vector<uint8_t>& body, size_t max_body) override;
  tunnel::ResponseHead take_head() override { return decoder_->take_head(); }
  bool head_produced() const override { return decoder_->head_produced(); }
  const std::string& error() const override { return decoder_->error(); }
  bool reusable() const override { return !upgrade_ && decoder_->reusable(); }
  void restart_response() override;
  bool upgrade() const override { return upgrade_; }
  bool switched() const override { return decoder_->switched(); }
  bool may_have_trailers() const override { return decoder_->chunked(); }
  tunnel::HeaderPairs take_trailers() override { return decoder_->take_trailers(); }

 private:
  ResponseDecoder::Limits limits_;
  bool head_request_ = false;
  bool chunked_ = false;
  bool upgrade_ = false;
  std::string request_head_;
  std::optional<ResponseDecoder> decoder_;
};

}  // namespace wtmesh::agent
