#include "tunnel/framed_body.h"

#include <algorithm>

#include "common/varint.h"

namespace wtmesh::tunnel {

void append_body_chunk(std::vector<uint8_t>& out, std::span<const uint8_t> data) {
  if (data.empty()) return;
  append_varint(out, data.size());
  append_bytes(out, data);
}

bool append_body_end(std::vector<uint8_t>& out, const HeaderPairs& trailers) {
  if (trailers.size() > kMaxHeaderCount) return false;
  std::vector<uint8_t> section;
  append_field_section(section, trailers);
  if (section.size() > kMaxTrailerLength) return false;
  out.push_back(0x00);
  append_varint(out, section.size());
  append_bytes(out, section);
  return true;
}

WireError FramedBodyReader::feed(std::span<const uint8_t> in, std::vector<std::span<const uint8_t>>& data) {
  if (error_ != WireError::kNone) return error_;
  auto fail = [this](WireError e) { return error_ = e; };
  while (!in.empty()) {
    switch (state_) {
      case State::kLength:
      case State::kTrailerLength: {
        // One byte at a time until the varint decodes (at most 8 bytes buffered).
        buf_.push_back(in.front());
        in = in.subspan(1);
        const auto v = read_varint(buf_);
        if (!v) break;
        buf_.clear();
        remaining_ = v->value;
        if (state_ == State::kTrailerLength) {
          if (remaining_ > kMaxTrailerLength) return fail(WireError::kTooLarge);
          if (remaining_ == 0) return fail(WireError::kMalformed);  // a section holds at least its count
          buf_.reserve(static_cast<size_t>(remaining_));
          state_ = State::kTrailers;
        } else {
          state_ = remaining_ == 0 ? State::kTrailerLength : State::kData;
        }
        break;
      }
      case State::kData: {
        const size_t n = static_cast<size_t>(std::min<uint64_t>(remaining_, in.size()));
        data.push_back(in.first(n));
        in = in.subspan(n);
        remaining_ -= n;
        if (remaining_ == 0) state_ = State::kLength;
        break;
      }
      case State::kTrailers: {
        const size_t n = static_cast<size_t>(std::min<uint64_t>(remaining_, in.size()));
        buf_.insert(buf_.end(), in.begin(), in.begin() + static_cast<std::ptrdiff_t>(n));
        in = in.subspan(n);
        remaining_ -= n;
        if (remaining_ == 0) {
          const WireError e = decode_field_section(buf_, trailers_);
          if (e != WireError::kNone) return fail(e);
          buf_.clear();
          buf_.shrink_to_fit();
          state_ = State::kDone;
        }
        break;
      }
      case State::kDone:
        return fail(WireError::kMalformed);  // nothing may follow the trailer section
    }
  }
  return WireError::kNone;
}

}  // namespace wtmesh::tunnel
