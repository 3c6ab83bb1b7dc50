#include "edge/response_body.h"

#include <algorithm>
#include <string>

#include "edge/http_codec.h"
#include "edge/route_table.h"

namespace wtmesh::edge {

FinalHead final_head(const tunnel::ResponseHead& head, bool head_request) {
  FinalHead f;
  const int status = head.status;
  const bool bodiless = head_request || status == 204 || status == 304 || (status >= 100 && status < 200);
  f.fields = response_fields(head);
  for (auto& [n, v] : f.fields) n = lower_ascii(n);
  if (head.content_length && status >= 200 && status != 204) {
    f.fields.emplace_back("content-length", std::to_string(*head.content_length));
  }
  f.no_body = bodiless || !head.has_body || (head.content_length && *head.content_length == 0);
  if (!f.no_body) f.announced = head.content_length;
  return f;
}

void ResponseBody::append(std::span<const uint8_t> data, const StreamRef& credit) {
  ring_.append(data);
  credited_ += data.size();
  credit_ = credit;
  bytes_ += data.size();
}

size_t ResponseBody::take(size_t n) {
  ring_.consume(n);
  const size_t c = std::min(n, credited_);
  credited_ -= c;
  return c;
}

void ResponseBody::drop() {
  credit(credited_);
  credited_ = 0;
  ring_.clear();
}

}  // namespace wtmesh::edge
