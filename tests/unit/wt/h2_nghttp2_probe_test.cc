// Probe (issue 13 item 1): can Debian's nghttp2 1.52 carry WebTransport over HTTP/2? Two real nghttp2
// sessions, client and server, joined in memory: the server's SETTINGS carry ENABLE_CONNECT_PROTOCOL
// (RFC 8441) and the draft's SETTINGS_WT_ENABLED and SETTINGS_WT_INITIAL_* (ids nghttp2 does not know);
// the client sends an extended CONNECT with `:protocol webtransport`; then two wt::H2Sessions talk over
// the CONNECT stream's DATA frames. Test code only: wt/ itself does not link nghttp2.
#include <gtest/gtest.h>
#include <nghttp2/nghttp2.h>

#include <algorithm>
#include <cstring>
#include <map>
#include <string>
#include <vector>

#include "h2_test_util.h"

namespace wtmesh::wt::h2test {
namespace {

struct Peer {
  nghttp2_session* session = nullptr;
  std::optional<H2Session> wt;
  Recorder handler;
  int32_t stream_id = -1;
  std::map<uint16_t, uint32_t> settings_seen;  // from the peer's SETTINGS frames
  std::map<std::string, std::string> headers;  // of the CONNECT stream
  Bytes in;                                    // DATA payload received, not yet given to wt
  bool in_fin = false;
  bool fin_given = false;
  bool reset = false;

  ~Peer() { nghttp2_session_del(session); }
};

int on_frame_recv(nghttp2_session*, const nghttp2_frame* frame, void* user) {
  auto* p = static_cast<Peer*>(user);
  if (frame->hd.type == NGHTTP2_SETTINGS && (frame->hd.flags & NGHTTP2_FLAG_ACK) == 0) {
    for (size_t i = 0; i < frame->settings.niv; ++i) {
      p->settings_seen[static_cast<uint16_t>(frame->settings.iv[i].settings_id)] =
          frame->settings.iv[i].value;
    }
  }
  if ((frame->hd.type == NGHTTP2_HEADERS || frame->hd.type == NGHTTP2_DATA) &&
      (frame->hd.flags & NGHTTP2_FLAG_END_STREAM) != 0) {
    p->in_fin = true;
  }
  if (frame->hd.type == NGHTTP2_HEADERS && p->stream_id < 0) p->stream_id = frame->hd.stream_id;
  return 0;
}

int on_header(nghttp2_session*, const nghttp2_frame*, const uint8_t* name, size_t namelen,
              const uint8_t* value, size_t valuelen, uint8_t, void* user) {
  static_cast<Peer*>(user)->headers[std::string(reinterpret_cast<const char*>(name), namelen)] =
      std::string(reinterpret_cast<const char*>(value), valuelen);
  return 0;
}

int on_data(nghttp2_session*, uint8_t, int32_t, const uint8_t* data, size_t len, void* user) {
  auto* p = static_cast<Peer*>(user);
  p->in.insert(p->in.end(), data, data + len);
  return 0;
}

int on_close(nghttp2_session*, int32_t, uint32_t error_code, void* user) {
  if (error_code != NGHTTP2_NO_ERROR) static_cast<Peer*>(user)->reset = true;
  return 0;
}

// DATA source: whatever the H2Session has written, END_STREAM once it says so.
ssize_t read_output(nghttp2_session*, int32_t, uint8_t* buf, size_t length, uint32_t* flags,
                    nghttp2_data_source*, void* user) {
  auto* p = static_cast<Peer*>(user);
  if (!p->wt) return NGHTTP2_ERR_DEFERRED;
  const auto out = p->wt->output();
  const size_t n = std::min(length, out.size());
  std::copy_n(out.begin(), n, buf);
  p->wt->consume_output(n);
  if (p->wt->output_fin()) {
    *flags |= NGHTTP2_DATA_FLAG_EOF;
  } else if (n == 0) {
    return NGHTTP2_ERR_DEFERRED;
  }
  return static_cast<ssize_t>(n);
}

nghttp2_session_callbacks* callbacks() {
  nghttp2_session_callbacks* cbs = nullptr;
  nghttp2_session_callbacks_new(&cbs);
  nghttp2_session_callbacks_set_on_frame_recv_callback(cbs, on_frame_recv);
  nghttp2_session_callbacks_set_on_header_callback(cbs, on_header);
  nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cbs, on_data);
  nghttp2_session_callbacks_set_on_stream_close_callback(cbs, on_close);
  return cbs;
}

// nghttp2 copies names and values at submit time; these are string literals anyway.
nghttp2_nv nv(const char* name, const char* value) {
  return {reinterpret_cast<uint8_t*>(const_cast<char*>(name)),
          reinterpret_cast<uint8_t*>(const_cast<char*>(value)), strlen(name), strlen(value),
          NGHTTP2_NV_FLAG_NONE};
}

// Moves bytes both ways until neither side has anything to send; hands received DATA to the
// H2Sessions after nghttp2 returns (callbacks only record).
void pump(Peer& a, Peer& b) {
  for (int round = 0; round < 1000; ++round) {
    bool moved = false;
    for (auto [from, to] : {std::pair{&a, &b}, std::pair{&b, &a}}) {
      if (from->wt && from->stream_id >= 0 && !from->wt->output().empty()) {
        nghttp2_session_resume_data(from->session, from->stream_id);
      }
      if (from->wt && from->wt->output_fin()) nghttp2_session_resume_data(from->session, from->stream_id);
      const uint8_t* data = nullptr;
      const ssize_t n = nghttp2_session_mem_send(from->session, &data);
      ASSERT_GE(n, 0);
      if (n > 0) {
        moved = true;
        ASSERT_EQ(nghttp2_session_mem_recv(to->session, data, static_cast<size_t>(n)), n);
      }
      if (to->wt && (!to->in.empty() || (to->in_fin && !to->fin_given))) {
        const Bytes in = std::exchange(to->in, {});
        const bool fin = to->in_fin && !to->fin_given;
        to->fin_given = to->fin_given || fin;
        to->wt->receive(in, fin);
        moved = true;
      }
    }
    if (!moved) return;
  }
  FAIL() << "no quiescence";
}

TEST(H2Nghttp2Probe, WebTransportSettingsExtendedConnectAndCapsules) {
  nghttp2_session_callbacks* cbs = callbacks();
  Peer client, server;
  ASSERT_EQ(nghttp2_session_client_new(&client.session, cbs, &client), 0);
  ASSERT_EQ(nghttp2_session_server_new(&server.session, cbs, &server), 0);
  nghttp2_session_callbacks_del(cbs);

  // Server SETTINGS: RFC 8441's, then the draft's (-15 §3.1, §4.3.1). nghttp2 1.52 accepts ids it
  // does not know in nghttp2_submit_settings and sends them as given.
  H2WtSettings server_wt = H2SessionConfig::default_local();
  server_wt.wt_enabled = 1;
  std::vector<nghttp2_settings_entry> iv = {{NGHTTP2_SETTINGS_ENABLE_CONNECT_PROTOCOL, 1}};
  for (const auto& [id, value] : server_wt.entries()) iv.push_back({id, value});
  ASSERT_EQ(nghttp2_submit_settings(server.session, NGHTTP2_FLAG_NONE, iv.data(), iv.size()), 0);
  const H2WtSettings client_wt = H2SessionConfig::default_local();
  std::vector<nghttp2_settings_entry> civ;
  for (const auto& [id, value] : client_wt.entries()) civ.push_back({id, value});
  ASSERT_EQ(nghttp2_submit_settings(client.session, NGHTTP2_FLAG_NONE, civ.data(), civ.size()), 0);
  pump(client, server);

  // The client saw every WebTransport setting, and nghttp2 itself knows extended CONNECT is on.
  EXPECT_EQ(client.settings_seen[kSettingsWtEnabled], 1u);
  EXPECT_EQ(client.settings_seen[kSettingsWtInitialMaxData], server_wt.initial_max_data);
  EXPECT_EQ(client.settings_seen[kSettingsWtInitialMaxStreamsBidi], server_wt.initial_max_streams_bidi);
  EXPECT_EQ(client.settings_seen[kSettingsWtInitialMaxStreamDataBidiRemote],
            server_wt.initial_max_stream_data_bidi_remote);
  EXPECT_EQ(nghttp2_session_get_remote_settings(client.session, NGHTTP2_SETTINGS_ENABLE_CONNECT_PROTOCOL),
            1u);
  EXPECT_EQ(server.settings_seen[kSettingsWtInitialMaxData], client_wt.initial_max_data);
  H2WtSettings client_view, server_view;
  for (const auto& [id, value] : client.settings_seen) client_view.apply(id, value);
  for (const auto& [id, value] : server.settings_seen) server_view.apply(id, value);
  EXPECT_EQ(client_view, server_wt);
  EXPECT_EQ(server_view, client_wt);

  // Extended CONNECT with :protocol webtransport (-15 §3.2).
  H2SessionConfig cc;
  cc.local = client_wt;
  cc.peer = client_view;
  client.wt.emplace(Role::kClient, cc, info(), &client.handler);
  const std::vector<nghttp2_nv> req = {nv(":method", "CONNECT"), nv(":protocol", "webtransport"),
                                       nv(":scheme", "https"),   nv(":authority", "edge.test"),
                                       nv(":path", "/wt"),       nv("origin", "https://edge.test")};
  nghttp2_data_provider prd{};
  prd.read_callback = read_output;
  client.stream_id = nghttp2_submit_request(client.session, nullptr, req.data(), req.size(), &prd, nullptr);
  ASSERT_GT(client.stream_id, 0);
  pump(client, server);
  ASSERT_EQ(server.stream_id, client.stream_id);
  EXPECT_EQ(server.headers[":method"], "CONNECT");
  EXPECT_EQ(server.headers[":protocol"], "webtransport");  // nghttp2 let it through
  EXPECT_FALSE(server.reset);

  H2SessionConfig sc;
  sc.local = server_wt;
  sc.peer = server_view;
  server.wt.emplace(Role::kServer, sc, info(), &server.handler);
  const std::vector<nghttp2_nv> resp = {nv(":status", "200")};
  ASSERT_EQ(nghttp2_submit_response(server.session, server.stream_id, resp.data(), resp.size(), &prd), 0);
  server.wt->start(ConnectResponse{200, {}});
  pump(client, server);
  EXPECT_EQ(client.headers[":status"], "200");
  client.wt->on_response(ConnectResponse{200, {}});
  ASSERT_TRUE(client.handler.ready);

  // Streams and datagrams as capsules in DATA frames, both ways.
  const StreamId id = *client.wt->open_bidi_stream();
  const Bytes big(100000, 'w');  // several DATA frames and WINDOW_UPDATEs
  EXPECT_EQ(client.wt->write(id, big, true), big.size());
  EXPECT_TRUE(client.wt->send_datagram(bytes("dgram")));
  pump(client, server);
  EXPECT_EQ(server.handler.data[id].size(), big.size());
  EXPECT_TRUE(server.handler.fin[id]);
  EXPECT_EQ(server.handler.datagrams, std::vector<std::string>{"dgram"});
  EXPECT_EQ(server.wt->write(id, bytes("reply"), true), 5u);
  const StreamId su = *server.wt->open_uni_stream();
  EXPECT_EQ(server.wt->write(su, bytes("push"), true), 4u);
  pump(client, server);
  EXPECT_EQ(client.handler.data[id], "reply");
  EXPECT_EQ(client.handler.data[su], "push");

  // WT_CLOSE_SESSION then END_STREAM each way (-15 §6.12).
  client.wt->close(3, "done");
  pump(client, server);
  ASSERT_TRUE(server.handler.closed);
  EXPECT_EQ(server.handler.closed->first, 3u);
  EXPECT_EQ(server.handler.closed->second, "done");
  EXPECT_TRUE(server.in_fin);
  EXPECT_TRUE(client.in_fin);
  EXPECT_FALSE(client.reset);
  EXPECT_FALSE(server.reset);
}

}  // namespace
}  // namespace wtmesh::wt::h2test
