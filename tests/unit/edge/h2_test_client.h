// An HTTP/2 client for unit tests, in memory: nghttp2's client session (a peer we did not write)
// with requests submitted by the test, bytes moved by hand to and from the codec under test, and
// per-stream results recorded (status, fields, body, END_STREAM, RST_STREAM code) plus the GOAWAY.
#pragma once

#include <nghttp2/nghttp2.h>

#include <algorithm>
#include <cstring>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace wtmesh::edge::test {

class H2TestClient {
 public:
  struct Result {
    std::vector<std::pair<std::string, std::string>> fields;  // final response head, :status first
    std::vector<int> informational;                           // 1xx statuses seen
    std::string body;
    bool ended = false;  // END_STREAM received
    bool closed = false;
    uint32_t close_code = 0;  // the RST_STREAM code (or NO_ERROR)
    std::string field(std::string_view name) const {
      for (const auto& [n, v] : fields)
        if (n == name) return v;
      return {};
    }
    int status() const { return fields.empty() ? 0 : std::stoi(field(":status")); }
  };

  // `settings` are the client's (empty: nghttp2's defaults); `window` its stream receive window.
  explicit H2TestClient(std::vector<nghttp2_settings_entry> settings = {}) {
    nghttp2_session_callbacks* cbs = nullptr;
    nghttp2_session_callbacks_new(&cbs);
    nghttp2_session_callbacks_set_on_header_callback(
        cbs, [](nghttp2_session*, const nghttp2_frame* f, const uint8_t* n, size_t nl, const uint8_t* v,
                size_t vl, uint8_t, void* u) {
          auto& r = self(u).results[f->hd.stream_id];
          std::string name(reinterpret_cast<const char*>(n), nl), value(reinterpret_cast<const char*>(v), vl);
          if (name == ":status") {
            const int st = std::stoi(value);
            if (st < 200) {
              r.informational.push_back(st);
              return 0;
            }
            r.fields.clear();
          }
          if (!r.fields.empty() || name == ":status")
            r.fields.emplace_back(std::move(name), std::move(value));
          return 0;
        });
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(
        cbs, [](nghttp2_session*, uint8_t, int32_t id, const uint8_t* d, size_t n, void* u) {
          self(u).results[id].body.append(reinterpret_cast<const char*>(d), n);
          return 0;
        });
    nghttp2_session_callbacks_set_on_frame_recv_callback(
        cbs, [](nghttp2_session*, const nghttp2_frame* f, void* u) {
          if (f->hd.type == NGHTTP2_GOAWAY) {
            self(u).goaway = f->goaway.error_code;
            self(u).goaway_last.push_back(f->goaway.last_stream_id);
          }
          if (f->hd.type == NGHTTP2_SETTINGS && (f->hd.flags & NGHTTP2_FLAG_ACK) == 0) {
            for (size_t i = 0; i < f->settings.niv; ++i)
              self(u).server_settings[f->settings.iv[i].settings_id] = f->settings.iv[i].value;
          }
          if ((f->hd.type == NGHTTP2_DATA || f->hd.type == NGHTTP2_HEADERS) &&
              (f->hd.flags & NGHTTP2_FLAG_END_STREAM))
            self(u).results[f->hd.stream_id].ended = true;
          return 0;
        });
    nghttp2_session_callbacks_set_on_stream_close_callback(
        cbs, [](nghttp2_session*, int32_t id, uint32_t code, void* u) {
          auto& r = self(u).results[id];
          r.closed = true;
          r.close_code = code;
          return 0;
        });
    nghttp2_session_client_new(&session_, cbs, this);
    nghttp2_session_callbacks_del(cbs);
    nghttp2_submit_settings(session_, NGHTTP2_FLAG_NONE, settings.data(), settings.size());
  }
  ~H2TestClient() { nghttp2_session_del(session_); }
  H2TestClient(const H2TestClient&) = delete;
  H2TestClient& operator=(const H2TestClient&) = delete;

  // Submits a request; `body` nullopt sends END_STREAM with the HEADERS; non-empty `trailers` follow
  // the body as a trailing HEADERS with END_STREAM. Returns the stream id.
  int32_t request(std::string method, std::string path, std::string authority,
                  std::vector<std::pair<std::string, std::string>> fields = {},
                  std::optional<std::string> body = std::nullopt,
                  std::vector<std::pair<std::string, std::string>> trailers = {}) {
    std::vector<std::pair<std::string, std::string>> all = {{":method", std::move(method)},
                                                            {":scheme", "https"},
                                                            {":authority", std::move(authority)},
                                                            {":path", std::move(path)}};
    if (all[0].second == "CONNECT") all = {all[0], all[2]};
    for (auto& f : fields) all.push_back(std::move(f));
    std::vector<nghttp2_nv> nva;
    for (auto& [n, v] : all) {
      nva.push_back({reinterpret_cast<uint8_t*>(n.data()), reinterpret_cast<uint8_t*>(v.data()), n.size(),
                     v.size(), NGHTTP2_NV_FLAG_NONE});
    }
    nghttp2_data_provider provider{};
    auto* src = body ? new Body{std::move(*body), std::move(trailers)} : nullptr;
    provider.source.ptr = src;
    provider.read_callback = [](nghttp2_session* session, int32_t stream_id, uint8_t* buf, size_t len,
                                uint32_t* flags, nghttp2_data_source* source, void*) -> ssize_t {
      auto* s = static_cast<Body*>(source->ptr);
      const size_t n = std::min(len, s->data.size());
      std::memcpy(buf, s->data.data(), n);
      s->data.erase(0, n);
      if (s->data.empty()) {
        *flags |= NGHTTP2_DATA_FLAG_EOF;
        if (!s->trailers.empty()) {  // a test client may submit them from the callback (nghttp2 allows it)
          *flags |= NGHTTP2_DATA_FLAG_NO_END_STREAM;
          std::vector<nghttp2_nv> tnv;
          for (auto& [tn, tv] : s->trailers) {
            tnv.push_back({reinterpret_cast<uint8_t*>(tn.data()), reinterpret_cast<uint8_t*>(tv.data()),
                           tn.size(), tv.size(), NGHTTP2_NV_FLAG_NONE});
          }
          nghttp2_submit_trailer(session, stream_id, tnv.data(), tnv.size());
        }
      }
      return static_cast<ssize_t>(n);
    };
    const int32_t id =
        nghttp2_submit_request(session_, nullptr, nva.data(), nva.size(), src ? &provider : nullptr, src);
    if (src) bodies_.emplace_back(src);
    return id;
  }
  // An extended CONNECT (RFC 8441) whose stream stays open: send() and end() write its DATA.
  int32_t extended_connect(std::string protocol, std::string path, std::string authority,
                           std::vector<std::pair<std::string, std::string>> fields = {}) {
    std::vector<std::pair<std::string, std::string>> all = {{":method", "CONNECT"},
                                                            {":protocol", std::move(protocol)},
                                                            {":scheme", "https"},
                                                            {":authority", std::move(authority)},
                                                            {":path", std::move(path)}};
    for (auto& f : fields) all.push_back(std::move(f));
    std::vector<nghttp2_nv> nva;
    for (auto& [n, v] : all) {
      nva.push_back({reinterpret_cast<uint8_t*>(n.data()), reinterpret_cast<uint8_t*>(v.data()), n.size(),
                     v.size(), NGHTTP2_NV_FLAG_NONE});
    }
    auto out = std::make_unique<Outgoing>();
    nghttp2_data_provider provider{};
    provider.source.ptr = out.get();
    provider.read_callback = [](nghttp2_session*, int32_t, uint8_t* buf, size_t len, uint32_t* flags,
                                nghttp2_data_source* source, void*) -> ssize_t {
      auto* o = static_cast<Outgoing*>(source->ptr);
      const size_t n = std::min(len, o->data.size());
      std::memcpy(buf, o->data.data(), n);
      o->data.erase(0, n);
      if (o->data.empty() && o->eof) {
        *flags |= NGHTTP2_DATA_FLAG_EOF;
      } else if (n == 0) {
        return NGHTTP2_ERR_DEFERRED;
      }
      return static_cast<ssize_t>(n);
    };
    const int32_t id = nghttp2_submit_request(session_, nullptr, nva.data(), nva.size(), &provider, nullptr);
    if (id > 0) outgoing_[id] = std::move(out);
    return id;
  }
  // DATA on an extended CONNECT's stream; end() sends END_STREAM after what was sent.
  void send(int32_t id, std::string_view data) {
    outgoing_.at(id)->data.append(data);
    nghttp2_session_resume_data(session_, id);
  }
  void end(int32_t id) {
    outgoing_.at(id)->eof = true;
    nghttp2_session_resume_data(session_, id);
  }
  // The server's SETTINGS value for `id` (once its SETTINGS arrived).
  uint32_t remote_setting(nghttp2_settings_id id) const {
    return nghttp2_session_get_remote_settings(session_, id);
  }
  void reset(int32_t id, uint32_t code = NGHTTP2_CANCEL) {
    nghttp2_submit_rst_stream(session_, NGHTTP2_FLAG_NONE, id, code);
  }
  // What the client wants to send now.
  std::string output() {
    std::string out;
    for (;;) {
      const uint8_t* d = nullptr;
      const ssize_t n = nghttp2_session_mem_send(session_, &d);
      if (n <= 0) break;
      out.append(reinterpret_cast<const char*>(d), static_cast<size_t>(n));
    }
    return out;
  }
  // Bytes from the server; false when nghttp2 calls them a protocol violation.
  bool input(std::span<const uint8_t> data) {
    return nghttp2_session_mem_recv(session_, data.data(), data.size()) == static_cast<ssize_t>(data.size());
  }

  std::map<int32_t, Result> results;
  std::optional<uint32_t> goaway;               // the error code of a GOAWAY received
  std::vector<int32_t> goaway_last;             // the last stream id of each GOAWAY received
  std::map<int32_t, uint32_t> server_settings;  // every SETTINGS entry received, unknown ids too

 private:
  struct Outgoing {
    std::string data;
    bool eof = false;
  };
  static H2TestClient& self(void* u) { return *static_cast<H2TestClient*>(u); }
  nghttp2_session* session_ = nullptr;
  struct Body {
    std::string data;
    std::vector<std::pair<std::string, std::string>> trailers;
  };
  std::vector<std::unique_ptr<Body>> bodies_;
  std::map<int32_t, std::unique_ptr<Outgoing>> outgoing_;
};

}  // namespace wtmesh::edge::test
