// HTTP/1.1 toward the local service, sans-I/O: the request head the agent writes for a tunnel
// request (docs/protocol.md §4), chunked framing for request bodies of unknown length, and an
// incremental response decoder (Beast's response_parser<buffer_body>) that turns upstream bytes
// into a tunnel ResponseHead and body bytes, holding at most its input buffer and one body slice.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "tunnel/wire.h"

namespace wtmesh::agent {

// Hop-by-hop header names (lower-case) that never cross the tunnel (RFC 9110 §7.6.1).
bool is_hop_by_hop(std::string_view lower_name);

struct UpstreamRequest {
  std::string head;      // request line + header fields + blank line
  bool chunked = false;  // the body must be sent with chunked framing (no length known)
  // The tunnel head carries `upgrade: websocket` (the edge's upgraded exchange): the request asks
  // `Connection: Upgrade` + `Upgrade: websocket` and has no body framing; after a 101 the connection
  // carries raw bytes both ways.
  bool upgrade = false;
};

// The HTTP/1.1 request for a tunnel request head: Host is the public authority; the edge's header
// fields are kept as given except hop-by-hop ones, host, content-length and transfer-encoding
// (framing is ours). A GET with `upgrade: websocket` (any case) becomes a WebSocket opening handshake
// (UpstreamRequest::upgrade); another upgrade value is dropped like any hop-by-hop field. nullopt with
// `error` set when a field could not be sent safely (CR/LF/NUL, bad method or target): the edge must not be
// able to smuggle a second request.
std::optional<UpstreamRequest> encode_upstream_request(const tunnel::RequestHead& head, std::string* error);

// Appends one chunk ("hex CRLF data CRLF") of a chunked body; empty data appends nothing.
void append_chunk(std::string& out, std::span<const uint8_t> data);
inline constexpr std::string_view kLastChunk = "0\r\n\r\n";

class ResponseDecoder {
 public:
  struct Limits {
    size_t header_limit = 60 * 1024;  // status line + fields; leaves room in the 64 KiB tunnel head
    size_t input_buffer = 256 * 1024;  // upstream bytes held before they are decoded (max_read_chunk)
    int max_informational = 8;        // 1xx interim responses before the final one
  };
  enum class Status {
    kNeedInput,  // feed more upstream bytes (or put_eof)
    kHead,       // a head is ready: take_head(); then call decode() again. An interim one (100,
                 // 103: tunnel::is_interim) comes before the final one and is not head_produced()
    kBodyFull,   // `body` reached max_body: send it onward, then call decode() again
    kDone,       // the response is complete (the last body bytes may be in `body`)
    kError,      // error() says what; head_sent() tells whether a head was already produced
  };

  explicit ResponseDecoder(bool head_request, Limits limits);
  explicit ResponseDecoder(bool head_request) : ResponseDecoder(head_request, Limits{}) {}
  // The request asked to switch protocols: a 101 is the final head (has_body, never reusable), after
  // which every upstream byte is body, raw, until EOF (kDone). Without it a 101 is an error.
  void allow_upgrade() { upgrade_ = true; }
  // A 101 was produced: the connection carries raw bytes both ways.
  bool switched() const { return raw_; }
  ~ResponseDecoder();
  ResponseDecoder(const ResponseDecoder&) = delete;
  ResponseDecoder& operator=(const ResponseDecoder&) = delete;

  // Room for upstream bytes; put_input takes at most this many.
  size_t input_room() const;
  void put_input(std::span<const uint8_t> data);
  // The upstream closed its side.
  void put_eof() { eof_ = true; }

  // Decodes buffered input, appending body bytes to `body` until it holds `max_body` bytes.
  Status decode(std::vector<uint8_t>& body, size_t max_body);

  tunnel::ResponseHead take_head() { return std::move(head_); }
  bool head_produced() const { return head_produced_; }
  const std::string& error() const { return error_; }
  int status() const { return status_; }
  // After kDone: the connection can carry another request (keep-alive, length-delimited body,
  // nothing extra received).
  bool reusable() const;
  size_t buffered_bytes() const { return in_.size(); }
  // After the final head: the body is chunked, so a trailer section may end it.
  bool chunked() const { return chunked_; }
  // After kDone: the chunked body's trailer fields (lower-case, hop-by-hop ones dropped).
  tunnel::HeaderPairs take_trailers();

 private:
  struct Impl;
  Status fail(std::string why);
  void new_parser();
  bool finish_head();

  Status decode_raw(std::vector<uint8_t>& body, size_t max_body);

  bool head_request_;
  bool upgrade_ = false;
  bool raw_ = false;
  Limits limits_;
  std::unique_ptr<Impl> impl_;
  std::vector<uint8_t> in_;
  bool eof_ = false;
  bool head_produced_ = false;
  bool done_ = false;
  bool keep_alive_ = false;
  int informational_ = 0;
  size_t header_bytes_ = 0;  // of the current response's header section, counted by us (see decode)
  size_t body_input_ = 0;    // input bytes the parser consumed after the header section
  int status_ = 0;
  bool chunked_ = false;
  size_t head_fields_ = 0;  // fields of the final head; Beast appends the trailer fields after them
  tunnel::ResponseHead head_;
  std::string error_;
};

}  // namespace wtmesh::agent
