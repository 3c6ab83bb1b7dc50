// QPACK wrappers over nghttp3.
#include "h3/qpack.h"

#include <nghttp3/nghttp3.h>

#include <new>

#include "h3/error_codes.h"

namespace wtmesh::h3 {
namespace {

// Per-field overhead of RFC 9114 §4.2.2 (as in HPACK).
constexpr size_t kFieldOverhead = 32;

struct Buf {
  nghttp3_buf b;
  Buf() { nghttp3_buf_init(&b); }
  ~Buf() { nghttp3_buf_free(&b, nghttp3_mem_default()); }
  Buf(const Buf&) = delete;
  Buf& operator=(const Buf&) = delete;
  std::span<const uint8_t> bytes() const { return {b.pos, nghttp3_buf_len(&b)}; }
};

struct StreamContext {
  nghttp3_qpack_stream_context* ctx = nullptr;
  ~StreamContext() { nghttp3_qpack_stream_context_del(ctx); }
};

struct RcPair {  // owns one decoded name/value pair
  nghttp3_qpack_nv nv{};
  ~RcPair() {
    if (nv.name != nullptr) nghttp3_rcbuf_decref(nv.name);
    if (nv.value != nullptr) nghttp3_rcbuf_decref(nv.value);
  }
};

}  // namespace

QpackEncoder::QpackEncoder() {
  if (nghttp3_qpack_encoder_new(&enc_, 0, nghttp3_mem_default()) != 0) throw std::bad_alloc();
  nghttp3_qpack_encoder_set_max_dtable_capacity(enc_, 0);
  nghttp3_qpack_encoder_set_max_blocked_streams(enc_, 0);
}

QpackEncoder::~QpackEncoder() { nghttp3_qpack_encoder_del(enc_); }

bool QpackEncoder::encode(StreamId id, const HeaderList& headers, std::vector<uint8_t>& out) {
  std::vector<nghttp3_nv> nva;
  nva.reserve(headers.size());
  for (const Header& h : headers) {
    nghttp3_nv nv{};
    nv.name = reinterpret_cast<const uint8_t*>(h.name.data());
    nv.namelen = h.name.size();
    nv.value = reinterpret_cast<const uint8_t*>(h.value.data());
    nv.valuelen = h.value.size();
    nv.flags = NGHTTP3_NV_FLAG_NONE;
    nva.push_back(nv);
  }
  Buf pbuf, rbuf, ebuf;
  if (nghttp3_qpack_encoder_encode(enc_, &pbuf.b, &rbuf.b, &ebuf.b, id, nva.data(), nva.size()) != 0)
    return false;
  // With a zero-capacity table nothing goes to the encoder stream.
  if (!ebuf.bytes().empty()) return false;
  out.insert(out.end(), pbuf.bytes().begin(), pbuf.bytes().end());
  out.insert(out.end(), rbuf.bytes().begin(), rbuf.bytes().end());
  return true;
}

uint64_t QpackEncoder::read_decoder_stream(std::span<const uint8_t> data) {
  if (data.empty()) return 0;
  const nghttp3_ssize n = nghttp3_qpack_encoder_read_decoder(enc_, data.data(), data.size());
  return n < 0 ? kQpackDecoderStreamError : 0;
}

QpackDecoder::QpackDecoder(size_t max_field_section_size) : max_(max_field_section_size) {
  if (nghttp3_qpack_decoder_new(&dec_, 0, 0, nghttp3_mem_default()) != 0) throw std::bad_alloc();
}

QpackDecoder::~QpackDecoder() { nghttp3_qpack_decoder_del(dec_); }

uint64_t QpackDecoder::read_encoder_stream(std::span<const uint8_t> data) {
  if (data.empty()) return 0;
  const nghttp3_ssize n = nghttp3_qpack_decoder_read_encoder(dec_, data.data(), data.size());
  return n < 0 ? kQpackEncoderStreamError : 0;
}

DecodedHeaders QpackDecoder::decode(StreamId id, std::span<const uint8_t> block) {
  DecodedHeaders r;
  auto fail = [&r](DecodedHeaders::Status s, uint64_t code, const char* why) {
    r.status = s;
    r.error = code;
    r.reason = why;
    r.headers.clear();
    return std::move(r);
  };
  StreamContext sctx;
  if (nghttp3_qpack_stream_context_new(&sctx.ctx, id, nghttp3_mem_default()) != 0) {
    return fail(DecodedHeaders::Status::kError, kH3InternalError, "out of memory");
  }
  size_t pos = 0;
  while (true) {
    RcPair pair;
    uint8_t flags = 0;
    const nghttp3_ssize n = nghttp3_qpack_decoder_read_request(
        dec_, sctx.ctx, &pair.nv, &flags, block.data() + pos, block.size() - pos, /*fin=*/1);
    if (n == NGHTTP3_ERR_QPACK_HEADER_TOO_LARGE) {  // nghttp3's own per-field cap (64 KiB)
      return fail(DecodedHeaders::Status::kTooLarge, kH3ExcessiveLoad, "header field too large");
    }
    if (n < 0) {
      return fail(DecodedHeaders::Status::kError, kQpackDecompressionFailed, "QPACK decompression failed");
    }
    pos += static_cast<size_t>(n);
    if (flags & NGHTTP3_QPACK_DECODE_FLAG_EMIT) {
      const nghttp3_vec name = nghttp3_rcbuf_get_buf(pair.nv.name);
      const nghttp3_vec value = nghttp3_rcbuf_get_buf(pair.nv.value);
      r.section_size += name.len + value.len + kFieldOverhead;
      if (r.section_size > max_) {
        const size_t size = r.section_size;
        auto out = fail(DecodedHeaders::Status::kTooLarge, kH3ExcessiveLoad, "header section too large");
        out.section_size = size;
        return out;
      }
      r.headers.push_back(Header{std::string(reinterpret_cast<const char*>(name.base), name.len),
                                 std::string(reinterpret_cast<const char*>(value.base), value.len)});
    }
    if (flags & NGHTTP3_QPACK_DECODE_FLAG_FINAL) break;
    if (flags & NGHTTP3_QPACK_DECODE_FLAG_BLOCKED) {
      return fail(DecodedHeaders::Status::kError, kQpackDecompressionFailed,
                  "field section references dynamic table");
    }
    if (n == 0 && !(flags & NGHTTP3_QPACK_DECODE_FLAG_EMIT)) {
      return fail(DecodedHeaders::Status::kError, kQpackDecompressionFailed, "truncated field section");
    }
  }
  if (pos != block.size())
    return fail(DecodedHeaders::Status::kError, kQpackDecompressionFailed, "trailing bytes");
  r.status = DecodedHeaders::Status::kOk;
  return r;
}

std::vector<uint8_t> QpackDecoder::take_decoder_stream_bytes() {
  const size_t len = nghttp3_qpack_decoder_get_decoder_streamlen(dec_);
  if (len == 0) return {};
  std::vector<uint8_t> out(len);
  nghttp3_buf b{out.data(), out.data() + out.size(), out.data(), out.data()};
  nghttp3_qpack_decoder_write_decoder(dec_, &b);
  out.resize(nghttp3_buf_len(&b));
  return out;
}

}  // namespace wtmesh::h3
