// libFuzzer target: the QPACK decoder wrapper (encoder-stream bytes and a field section), checking the
// decoded-size cap always holds.
#include <cstddef>
#include <cstdint>
#include <span>

#include "h3/qpack.h"

using namespace wtmesh::h3;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 2) return 0;
  const size_t max = 64 + data[0] * 64;
  const size_t enc_len = std::min<size_t>(data[1], size - 2);
  const std::span<const uint8_t> enc_stream(data + 2, enc_len);
  const std::span<const uint8_t> block(data + 2 + enc_len, size - 2 - enc_len);
  QpackDecoder dec(max);
  if (dec.read_encoder_stream(enc_stream) != 0) return 0;
  const DecodedHeaders d = dec.decode(0, block);
  size_t total = 0;
  for (const Header& h : d.headers) total += h.name.size() + h.value.size() + 32;
  if (total > max) __builtin_trap();
  if (d.status == DecodedHeaders::Status::kOk) {
    // Whatever decoded must re-encode and decode to the same list.
    QpackEncoder enc;
    std::vector<uint8_t> again;
    if (!enc.encode(0, d.headers, again)) __builtin_trap();
    QpackDecoder dec2(max);
    const DecodedHeaders d2 = dec2.decode(0, again);
    if (d2.status != DecodedHeaders::Status::kOk || d2.headers.size() != d.headers.size()) __builtin_trap();
  }
  (void)dec.take_decoder_stream_bytes();
  return 0;
}
