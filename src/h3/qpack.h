// RAII wrappers over nghttp3's QPACK encoder/decoder (RFC 9204), used with a zero-capacity dynamic
// table: we advertise QPACK_MAX_TABLE_CAPACITY=0 and QPACK_BLOCKED_STREAMS=0, so field sections we
// send use the static table and literals, and a peer that tries to use a dynamic table fails.
//
// nghttp3 does not enforce SETTINGS_MAX_FIELD_SECTION_SIZE, so QpackDecoder counts name+value+32
// bytes per decoded field (RFC 9114 §4.2.2) and stops as soon as the total passes the limit
// (header-expansion attacks: quic-go CVE-2025-64702, CVE-2026-40898).
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "h3/connection.h"

struct nghttp3_qpack_encoder;
struct nghttp3_qpack_decoder;

namespace wtmesh::h3 {

class QpackEncoder {
 public:
  QpackEncoder();
  ~QpackEncoder();
  QpackEncoder(const QpackEncoder&) = delete;
  QpackEncoder& operator=(const QpackEncoder&) = delete;

  // Encodes a field section (prefix + field lines) for a HEADERS frame payload. Names must be
  // lower-case. False only if nghttp3 fails (out of memory).
  bool encode(StreamId id, const HeaderList& headers, std::vector<uint8_t>& out);
  // The peer's QPACK decoder-stream bytes. Returns 0, or QPACK_DECODER_STREAM_ERROR.
  uint64_t read_decoder_stream(std::span<const uint8_t> data);

 private:
  nghttp3_qpack_encoder* enc_ = nullptr;
};

struct DecodedHeaders {
  enum class Status { kOk, kTooLarge, kError };
  Status status = Status::kError;
  HeaderList headers;
  uint64_t error = 0;  // kError: QPACK_DECOMPRESSION_FAILED; kTooLarge: H3_EXCESSIVE_LOAD
  std::string reason;
  size_t section_size = 0;  // sum of name+value+32 over fields decoded so far
};

class QpackDecoder {
 public:
  explicit QpackDecoder(size_t max_field_section_size);
  ~QpackDecoder();
  QpackDecoder(const QpackDecoder&) = delete;
  QpackDecoder& operator=(const QpackDecoder&) = delete;

  // The peer's QPACK encoder-stream bytes. Returns 0, or QPACK_ENCODER_STREAM_ERROR (e.g. any
  // Set Dynamic Table Capacity above our 0).
  uint64_t read_encoder_stream(std::span<const uint8_t> data);
  // Decodes one complete encoded field section (a HEADERS frame payload).
  DecodedHeaders decode(StreamId id, std::span<const uint8_t> block);
  // Decoder-stream bytes to send (section acknowledgements / cancellations); usually empty with a
  // zero-capacity table.
  std::vector<uint8_t> take_decoder_stream_bytes();

  size_t max_field_section_size() const { return max_; }

 private:
  nghttp3_qpack_decoder* dec_ = nullptr;
  size_t max_;
};

}  // namespace wtmesh::h3
