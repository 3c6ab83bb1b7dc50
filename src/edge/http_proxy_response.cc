// HttpProxy, the response half: the agent's answer on the request stream becomes an HTTP/1.1
// response for the client (edge/http_proxy.h). The request half is in http_proxy.cc.
#include "edge/http_proxy.h"

namespace wtmesh::edge {

// --- response -------------------------------------------------------------------------------------

void HttpProxy::on_response_data(std::span<const uint8_t> data, bool fin) {
  if (resp_ == Resp::kAwaitHead) {
    tunnel::ResponseHead head;
    const tunnel::WireError err = head_reader_.feed(data, head);
    if (err == tunnel::WireError::kNeedMore) {
      dir_.consume(ref_, data.size());
      if (fin) {
        attached_ = false;
        dir_.release(ref_);
        respond_local(502, "The tunnel's agent closed the request without answering.", false);
      }
    } else if (err != tunnel::WireError::kNone) {
      dir_.consume(ref_, data.size());
      cancel_stream(tunnel::kStreamProtocolError);
      respond_local(
          502,
          std::string("The tunnel's agent sent an invalid response head (") + tunnel::to_string(err) + ").",
          false);
    } else {
      const std::vector<uint8_t> body = head_reader_.take_body();
      dir_.consume(ref_, data.size() - body.size());
      start_response(head);
      if (resp_ == Resp::kBody) {
        append_body(body);
      } else {
        dir_.consume(ref_, body.size());
      }
      if (fin && attached_) end_body();
    }
  } else if (resp_ == Resp::kBody) {
    append_body(data);
    if (fin && attached_) end_body();
  } else {
    dir_.consume(ref_, data.size());
    if (fin && resp_ == Resp::kDiscard) response_complete();
  }
  if (hooks_.wake) hooks_.wake();
}

void HttpProxy::start_response(tunnel::ResponseHead& head) {
  for (const auto& [name, value] : head.headers) {
    if (name == tunnel::kErrorHeader) {
      resp_ = Resp::kDiscard;
      const bool keep = keep_alive_ && (req_fin_sent_ && !close_after_);
      append_out(error_response(502, value, version_, keep));
      if (!keep) close_after_ = true;
      head_sent_ = true;
      status_ = 502;
      note_ = sanitize_header_value(value);
      return;
    }
  }
  if (head.status < 200) {
    cancel_stream(tunnel::kStreamProtocolError);
    resp_ = Resp::kDone;
    respond_local(502, "The tunnel's agent sent an interim (1xx) response.", false);
    return;
  }
  const bool keep = keep_alive_ && !close_after_;
  local_answers_ = 0;
  append_out(response_head_bytes(head, head_method_, version_, keep, &plan_));
  if (!plan_.keep_alive) close_after_ = true;
  head_sent_ = true;
  status_ = head.status;
  resp_ = Resp::kBody;
}

void HttpProxy::append_body(std::span<const uint8_t> data) {
  if (data.empty()) return;
  switch (plan_.framing) {
    case Framing::kNone:
      dir_.consume(ref_, data.size());
      break;
    case Framing::kLength: {
      const uint64_t allowed = plan_.length - resp_in_;
      const size_t take = static_cast<size_t>(std::min<uint64_t>(allowed, data.size()));
      append_body_out(data.first(take));
      resp_in_ += take;
      if (take < data.size()) {
        // More than Content-Length: the client got its complete response; the stream is broken.
        dir_.consume(ref_, data.size() - take);
        cancel_stream(tunnel::kStreamProtocolError);
        close_after_ = true;
        note_ = "agent sent more than content-length";
        response_complete();
      }
      break;
    }
    case Framing::kChunked:
      append_out(chunk_header(data.size()));
      append_body_out(data);
      append_out(kChunkTrailer);
      resp_in_ += data.size();
      break;
    case Framing::kClose:
      append_body_out(data);
      resp_in_ += data.size();
      break;
  }
}

void HttpProxy::end_body() {
  if (plan_.framing == Framing::kChunked) append_out(kLastChunk);
  if (plan_.framing == Framing::kLength && resp_in_ < plan_.length) {
    // The client cannot tell a short body from a slow one except by the connection closing.
    close_after_ = true;
    note_ = "agent sent less than content-length";
  }
  if (plan_.framing == Framing::kClose) close_after_ = true;
  response_complete();
}

void HttpProxy::response_complete() {
  resp_ = Resp::kDone;
  if (attached_ && req_fin_sent_) {
    attached_ = false;
    dir_.release(ref_);
  }
  maybe_finish_request();
}

void HttpProxy::on_stream_aborted(std::optional<uint32_t> code, std::string_view reason) {
  attached_ = false;  // the directory sends nothing more
  if (resp_ != Resp::kDone) {
    if (!head_sent_) {
      std::string detail;
      if (!code) {
        detail = "The tunnel's agent disconnected" +
                 (reason.empty() ? std::string() : " (" + std::string(reason) + ")") + ".";
      } else if (*code == tunnel::kStreamUpstreamFailed) {
        detail = "The upstream service failed before answering.";
      } else {
        detail = "The tunnel's agent aborted the request (code " + std::to_string(*code) + ").";
      }
      respond_local(502, detail, keep_alive_ && req_fin_sent_ && !close_after_);
    } else {
      // Part of the response is out: only closing the connection tells the client it is cut short.
      note_ = "agent aborted the response";
      close_after_ = true;
      req_fin_sent_ = true;
      resp_ = Resp::kDone;
      maybe_finish_request();
    }
  }
  if (hooks_.wake) hooks_.wake();
}

}  // namespace wtmesh::edge
