// An HTTP/2 server for unit tests, in memory: nghttp2's server session (a peer we did not write),
// bytes moved by hand to and from the agent's H2UpstreamSession under test. It records each request
// (fields, body, END_STREAM) and answers when the test says so: a head, body bytes (all at once or
// as the window allows), trailers, RST_STREAM, GOAWAY.
#pragma once

#include <nghttp2/nghttp2.h>

#include <cstring>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace wtmesh::agent::test {

class H2TestServer {
 public:
  struct Request {
    std::vector<std::pair<std::string, std::string>> fields;
    std::string body;
    bool ended = false;
    bool closed = false;
    uint32_t close_code = 0;
    std::string field(std::string_view name) const {
      for (const auto& [n, v] : fields)
        if (n == name) return v;
      return {};
    }
    // The response body still to send, and whether END_STREAM follows it.
    std::string out;
    size_t out_pos = 0;
    bool out_end = false;
    std::optional<std::vector<std::pair<std::string, std::string>>> trailers;
  };

  explicit H2TestServer(std::vector<nghttp2_settings_entry> settings = {}) {
    nghttp2_session_callbacks* cbs = nullptr;
    nghttp2_session_callbacks_new(&cbs);
    nghttp2_session_callbacks_set_on_header_callback(
        cbs, [](nghttp2_session*, const nghttp2_frame* f, const uint8_t* n, size_t nl, const uint8_t* v,
                size_t vl, uint8_t, void* u) {
          self(u).requests[f->hd.stream_id].fields.emplace_back(
              std::string(reinterpret_cast<const char*>(n), nl),
              std::string(reinterpret_cast<const char*>(v), vl));
          return 0;
        });
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(
        cbs, [](nghttp2_session*, uint8_t, int32_t id, const uint8_t* d, size_t n, void* u) {
          self(u).requests[id].body.append(reinterpret_cast<const char*>(d), n);
          return 0;
        });
    nghttp2_session_callbacks_set_on_frame_recv_callback(
        cbs, [](nghttp2_session*, const nghttp2_frame* f, void* u) {
          if ((f->hd.type == NGHTTP2_DATA || f->hd.type == NGHTTP2_HEADERS) &&
              (f->hd.flags & NGHTTP2_FLAG_END_STREAM))
            self(u).requests[f->hd.stream_id].ended = true;
          return 0;
        });
    nghttp2_session_callbacks_set_on_stream_close_callback(
        cbs, [](nghttp2_session*, int32_t id, uint32_t code, void* u) {
          auto& r = self(u).requests[id];
          r.closed = true;
          r.close_code = code;
          return 0;
        });
    nghttp2_session_server_new(&session_, cbs, this);
    nghttp2_session_callbacks_del(cbs);
    nghttp2_submit_settings(session_, NGHTTP2_FLAG_NONE, settings.data(), settings.size());
  }
  ~H2TestServer() { nghttp2_session_del(session_); }
  H2TestServer(const H2TestServer&) = delete;
  H2TestServer& operator=(const H2TestServer&) = delete;

  // Bytes from the client; false on a protocol error.
  bool feed(std::span<const uint8_t> data) {
    return nghttp2_session_mem_recv(session_, data.data(), data.size()) == static_cast<ssize_t>(data.size());
  }
  std::vector<uint8_t> output() {
    std::vector<uint8_t> out;
    for (;;) {
      const uint8_t* d = nullptr;
      const ssize_t n = nghttp2_session_mem_send(session_, &d);
      if (n <= 0) break;
      out.insert(out.end(), d, d + n);
    }
    return out;
  }

  // A response head; `body` nullopt: END_STREAM on the HEADERS.
  void respond(int32_t id, int status, std::vector<std::pair<std::string, std::string>> fields,
               std::optional<std::string> body, bool end = true,
               std::optional<std::vector<std::pair<std::string, std::string>>> trailers = std::nullopt) {
    auto& r = requests[id];
    std::vector<std::pair<std::string, std::string>> all = {{":status", std::to_string(status)}};
    for (auto& f : fields) all.push_back(std::move(f));
    std::vector<nghttp2_nv> nva;
    for (auto& [n, v] : all) nva.push_back(nv(n, v));
    r.trailers = std::move(trailers);
    if (!body) {
      nghttp2_submit_response(session_, id, nva.data(), nva.size(), nullptr);
      return;
    }
    r.out = std::move(*body);
    r.out_end = end;
    nghttp2_data_provider prd{};
    prd.read_callback = read_cb;
    nghttp2_submit_response(session_, id, nva.data(), nva.size(), &prd);
  }
  // An interim (1xx) HEADERS before the response.
  void interim(int32_t id, int status) {
    const std::string s = std::to_string(status), name = ":status";
    const nghttp2_nv h = nv(name, s);
    nghttp2_submit_headers(session_, NGHTTP2_FLAG_NONE, id, nullptr, &h, 1, nullptr);
  }
  void more(int32_t id, const std::string& data, bool end) {
    auto& r = requests[id];
    r.out.append(data);
    r.out_end = end;
    nghttp2_session_resume_data(session_, id);
  }
  void reset(int32_t id, uint32_t code) { nghttp2_submit_rst_stream(session_, NGHTTP2_FLAG_NONE, id, code); }
  void goaway(int32_t last_stream_id) {
    nghttp2_submit_goaway(session_, NGHTTP2_FLAG_NONE, last_stream_id, NGHTTP2_NO_ERROR, nullptr, 0);
  }
  // Credits the client's DATA (the server's automatic WINDOW_UPDATE is on).
  std::map<int32_t, Request> requests;

 private:
  static H2TestServer& self(void* u) { return *static_cast<H2TestServer*>(u); }
  static nghttp2_nv nv(const std::string& n, const std::string& v) {
    return nghttp2_nv{reinterpret_cast<uint8_t*>(const_cast<char*>(n.data())),
                      reinterpret_cast<uint8_t*>(const_cast<char*>(v.data())), n.size(), v.size(),
                      NGHTTP2_NV_FLAG_NONE};
  }
  static ssize_t read_cb(nghttp2_session* s, int32_t id, uint8_t* buf, size_t len, uint32_t* flags,
                         nghttp2_data_source*, void* u) {
    auto& r = self(u).requests[id];
    const size_t n = std::min(len, r.out.size() - r.out_pos);
    std::memcpy(buf, r.out.data() + r.out_pos, n);
    r.out_pos += n;
    if (r.out_pos == r.out.size() && r.out_end) {
      *flags |= NGHTTP2_DATA_FLAG_EOF;
      if (r.trailers) {
        *flags |= NGHTTP2_DATA_FLAG_NO_END_STREAM;
        std::vector<nghttp2_nv> nva;
        for (auto& [k, v] : *r.trailers) nva.push_back(nv(k, v));
        nghttp2_submit_trailer(s, id, nva.data(), nva.size());
      }
    } else if (n == 0) {
      return NGHTTP2_ERR_DEFERRED;
    }
    return static_cast<ssize_t>(n);
  }

  nghttp2_session* session_ = nullptr;
};

}  // namespace wtmesh::agent::test
