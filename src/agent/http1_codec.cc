#include "agent/http1_codec.h"

namespace wtmesh::agent {

bool Http1Codec::start_request(const tunnel::RequestHead& head, std::string* error) {
  auto request = encode_upstream_request(head, error);
  if (!request) return false;
  request_head_ = std::move(request->head);
  chunked_ = request->chunked;
  upgrade_ = request->upgrade;
  head_request_ = head.method == "HEAD";
  restart_response();
  return true;
}

void Http1Codec::restart_response() {
  decoder_.emplace(head_request_, limits_);
  if (upgrade_) decoder_->allow_upgrade();
}

void Http1Codec::write_body(std::string& out, std::span<const uint8_t> data) const {
  if (chunked_) {
    append_chunk(out, data);
  } else {
    out.append(reinterpret_cast<const char*>(data.data()), data.size());
  }
}

// A chunked request ends with its trailer section (RFC 9112 §7.1.2); with a content-length there is
// nowhere to put trailers and they are dropped.
void Http1Codec::write_end(std::string& out, const tunnel::HeaderPairs& trailers) const {
  if (!chunked_ || upgrade_) return;
  if (trailers.empty()) return out.append(kLastChunk), void();
  out.append("0\r\n");
  for (const auto& [n, v] : trailers) out.append(n).append(": ").append(v).append("\r\n");
  out.append("\r\n");
}

UpstreamCodec::Status Http1Codec::decode(std::vector<uint8_t>& body, size_t max_body) {
  switch (decoder_->decode(body, max_body)) {
    case ResponseDecoder::Status::kNeedInput:
      return Status::kNeedInput;
    case ResponseDecoder::Status::kHead:
      return Status::kHead;
    case ResponseDecoder::Status::kBodyFull:
      return Status::kBodyFull;
    case ResponseDecoder::Status::kDone:
      return Status::kDone;
    case ResponseDecoder::Status::kError:
      break;
  }
  return Status::kError;
}

}  // namespace wtmesh::agent
