// The response half that HTTP/2 streams (h2_stream.cc) and HTTP/3 request streams (h3_requests.cc)
// share: the fields and body plan of the agent's final head, and the response bytes held for the
// client's stream together with the flow-control credit they owe the agent's request stream.
#pragma once

#include <cstdint>
#include <optional>
#include <span>

#include "common/byte_ring.h"
#include "edge/tunnel_directory.h"
#include "tunnel/wire.h"

namespace wtmesh::edge {

// The final head as a multiplexed version sends it (after its :status).
struct FinalHead {
  tunnel::HeaderPairs fields;         // response_fields(), lower-case, content-length when known
  bool no_body = false;               // the HEADERS end the stream
  std::optional<uint64_t> announced;  // the content-length of a body that follows
};
FinalHead final_head(const tunnel::ResponseHead& head, bool head_request);

class ResponseBody {
 public:
  explicit ResponseBody(TunnelDirectory& dir) : dir_(dir) {}
  ~ResponseBody() { drop(); }
  ResponseBody(const ResponseBody&) = delete;
  ResponseBody& operator=(const ResponseBody&) = delete;

  // Body bytes from the agent's stream `credit`, held until the client's stream takes them.
  void append(std::span<const uint8_t> data, const StreamRef& credit);
  // Bytes of the edge's own (an error page): no credit.
  void append_local(std::span<const uint8_t> data) { ring_.append(data); }
  bool empty() const { return ring_.empty(); }
  size_t size() const { return ring_.size(); }
  std::span<const uint8_t> front() const { return ring_.front(); }
  // The client's stream took `n` bytes from the front: returns how many of them owe credit, for the
  // caller to give back (credit() now, or after a library call returned).
  size_t take(size_t n);
  void credit(size_t n) {
    if (n > 0) dir_.consume(credit_, n);
  }
  const StreamRef& credit_ref() const { return credit_; }
  // Nothing held will reach the client: the credit goes back now.
  void drop();
  uint64_t bytes() const { return bytes_; }  // appended in all (the request log)

 private:
  TunnelDirectory& dir_;
  ByteRing ring_;
  size_t credited_ = 0;  // of ring_, bytes the agent is owed credit for (the first ones)
  StreamRef credit_;
  uint64_t bytes_ = 0;
};

}  // namespace wtmesh::edge
