#pragma once
// A guard around a Boost.Beast 1.83 assertion in its chunked-body parser, used by both HTTP/1.1
// decoders (the edge's requests, the agent's upstream responses).
//
// When a chunked body's first chunk is its last ("0\r\n": an empty body), the parser answers
// need_more until the trailer section's blank line has come, and the next put with fewer than 5
// bytes fails `BOOST_ASSERT(n >= 5)` (boost/beast/http/impl/basic_parser.ipp:704): fed "0\r\n" and
// then the rest a byte at a time, the second put has 4. The code after the assertion is right (it
// asks for more again), so builds with NDEBUG are unaffected, but one with assertions (CI's
// sanitizer build) aborts on bytes any peer can send. Fixed upstream (boostorg/beast#2861, Boost
// 1.86); Debian bookworm ships 1.83. Found by fuzz/agent_upstream_response.cc.
//
// The guard: until the parser has consumed any of a chunked body, a body that starts with '0' (the
// last chunk is 1*"0" [ext] CRLF) is given to it only once at least 5 bytes are buffered, the
// smallest complete chunked body ("0\r\n\r\n"). A valid body has that many to come, so this waits
// for bytes that are on their way, and holds back no data: a first chunk that carries data and
// starts with '0' ("01\r\nx") is 5 bytes by the time it has any. Any other first byte goes to the
// parser at once (a malformed size is refused as soon as it arrives).
#include <cstddef>
#include <cstdint>
#include <span>

namespace wtmesh {

inline constexpr size_t kSmallestChunkedBody = 5;  // "0\r\n\r\n"

// True while the `buffered` bytes of a chunked body must not be given to Beast's parser yet.
constexpr bool hold_chunked_body_start(bool chunked, size_t body_bytes_consumed,
                                       std::span<const uint8_t> buffered) {
  return chunked && body_bytes_consumed == 0 && !buffered.empty() && buffered[0] == '0' &&
         buffered.size() < kSmallestChunkedBody;
}

}  // namespace wtmesh
