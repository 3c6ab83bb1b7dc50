#include "agent/udp_connect_stream.h"

#include <spdlog/spdlog.h>

#include "tunnel/wire.h"

namespace wtmesh::agent {

UdpConnectStream::UdpConnectStream(wt::Session& session, wt::StreamId id, std::string name, uint64_t flow_id,
                                   UdpConnectSink* sink, std::function<void()> done)
    : session_(&session),
      id_(id),
      name_(std::move(name)),
      flow_id_(flow_id),
      sink_(sink),
      done_(std::move(done)) {}

void UdpConnectStream::start(std::span<const uint8_t>, bool) {
  const auto head = tunnel::encode_connect_stream_head({name_, flow_id_});
  // A new stream takes a head of at most 300 bytes: its window is far larger.
  if (session_->write(id_, head, false) < head.size()) {
    session_->reset_stream(id_, tunnel::kStreamCancelled);
    end(true);
  }
}

void UdpConnectStream::on_body(std::span<const uint8_t> data, bool fin) {
  if (done_called_) {
    session_->consume(id_, data.size());
    return;
  }
  size_t used = 0;
  if (!replied_) {
    tunnel::ConnectReply reply;
    const auto e = reply_reader_.feed(data, used, reply);
    if (e != tunnel::WireError::kNone && e != tunnel::WireError::kNeedMore) {
      session_->consume(id_, data.size());
      session_->reset_stream(id_, tunnel::kStreamProtocolError);
      session_->stop_sending(id_, tunnel::kStreamProtocolError);
      return end(true);
    }
    if (e == tunnel::WireError::kNone) {
      replied_ = true;
      auto keep = shared_from_this();
      if (sink_) sink_->on_udp_reply(flow_id_, reply);
      if (!reply.connected()) {
        sink_ = nullptr;  // told already: a refusal is the flow's end
        session_->consume(id_, data.size());
        session_->write(id_, {}, true);
        return end(false);
      }
    }
  }
  session_->consume(id_, data.size());  // nothing follows a connected reply: dropped
  if (fin) {
    if (replied_)
      session_->write(id_, {}, true);  // FIN back: the stream is done both ways
    else
      session_->reset_stream(id_, tunnel::kStreamProtocolError);  // FIN inside the reply
    end(true);
  }
}

void UdpConnectStream::on_reset(std::optional<uint32_t>) {
  if (session_ != nullptr) session_->reset_stream(id_, tunnel::kStreamCancelled);
  end(true);
}

void UdpConnectStream::on_stop_sending(std::optional<uint32_t>) {
  if (session_ != nullptr) session_->reset_stream(id_, tunnel::kStreamCancelled);
  end(true);
}

void UdpConnectStream::on_stream_closed() { end(true); }

void UdpConnectStream::on_session_gone() {
  session_ = nullptr;
  end(true);
}

void UdpConnectStream::finish() {
  if (done_called_) return;
  sink_ = nullptr;
  if (session_ != nullptr) session_->write(id_, {}, true);
  end(false);
}

void UdpConnectStream::end(bool tell_sink) {
  if (done_called_) return;
  done_called_ = true;
  if (tell_sink && sink_ != nullptr) sink_->on_udp_end(flow_id_);
  sink_ = nullptr;
  if (done_) done_();
}

}  // namespace wtmesh::agent
