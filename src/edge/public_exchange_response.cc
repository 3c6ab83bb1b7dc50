// PublicExchange, the response half: the agent's answer on the request stream, read as a
// tunnel::ResponseHead and a body checked against what the head announced, goes to the ExchangeSink
// (edge/public_exchange.h). The request half is in public_exchange.cc.
#include "edge/http_codec.h"
#include "edge/public_exchange.h"

namespace wtmesh::edge {

void PublicExchange::on_response_data(std::span<const uint8_t> data, bool fin) {
  const StreamRef ref = ref_;
  const uint64_t generation = generation_;
  if (resp_ == Resp::kAwaitHead) {
    tunnel::ResponseHead head;
    const tunnel::WireError err = head_reader_.feed(data, head);
    if (err == tunnel::WireError::kNeedMore) {
      dir_.consume(ref, data.size());
      if (fin) {
        attached_ = false;
        dir_.release(ref);
        respond_local(502, "The tunnel's agent closed the request without answering.", false);
      }
    } else if (err != tunnel::WireError::kNone) {
      dir_.consume(ref, data.size());
      cancel_stream(tunnel::kStreamProtocolError);
      respond_local(
          502,
          std::string("The tunnel's agent sent an invalid response head (") + tunnel::to_string(err) + ").",
          false);
    } else if (tunnel::is_interim(head.status)) {
      // An interim head (docs/protocol.md §4.1): handed on, then the next head is read from the rest.
      const std::vector<uint8_t> rest = head_reader_.take_body();
      dir_.consume(ref, data.size() - rest.size());
      head_reader_ = {};
      if (++interim_count_ > tunnel::kMaxInterimHeads) {
        dir_.consume(ref, rest.size());
        cancel_stream(tunnel::kStreamProtocolError);
        respond_local(502, "The tunnel's agent sent too many interim (1xx) responses.", false);
      } else {
        // 100 Continue is the edge's own (§4); an upgrade's client waits for the switch only.
        if (head.status != 100 && req_.upgrade.empty()) sink_.send_interim(head);
        if (generation == generation_ && phase_ != Phase::kIdle && (!rest.empty() || fin)) {
          return on_response_data(rest, fin);
        }
        dir_.consume(ref, rest.size());
      }
    } else {
      const std::vector<uint8_t> body = head_reader_.take_body();
      dir_.consume(ref, data.size() - body.size());
      start_response(head);
      if (generation != generation_ || phase_ == Phase::kIdle) {
        dir_.consume(ref, body.size());  // the exchange ended with the head
      } else if (resp_ == Resp::kBody) {
        append_body(body);
        if (fin && attached_ && generation == generation_ && phase_ != Phase::kIdle) on_response_fin();
      } else {
        dir_.consume(ref, body.size());
        if (fin && resp_ == Resp::kDiscard) response_complete();
      }
    }
  } else if (resp_ == Resp::kBody) {
    append_body(data);
    if (fin && attached_ && generation == generation_ && phase_ != Phase::kIdle) on_response_fin();
  } else {
    dir_.consume(ref, data.size());
    if (fin && resp_ == Resp::kDiscard) response_complete();
  }
  sink_.exchange_progress();
}

void PublicExchange::start_response(tunnel::ResponseHead& head) {
  if (!req_.upgrade.empty() && head.status != 101 && !req_end_) {
    // The upgrade was declined: the request (a GET, no body) is over. The codec fed nothing yet.
    req_end_ = true;
    pump_request();
  }
  for (const auto& [name, value] : head.headers) {
    if (name == tunnel::kErrorHeader) {
      resp_ = Resp::kDiscard;
      const bool reusable = req_fin_sent_ && !close_after_;
      if (!reusable) close_after_ = true;
      head_sent_ = true;
      status_ = 502;
      // The agent's words (the upstream's address, an errno, a certificate problem) are for the
      // tunnel's owner, who has them in the agent's log, and for the edge's log; a visitor gets a
      // page that names nothing inside the tunnel (docs/protocol.md §4, issue 14 6k).
      note_ = sanitize_header_value(value);
      sink_.send_error(502, kUpstreamFailedPage, reusable, true);
      return;
    }
  }
  const bool upgrade = head.status == 101 && !req_.upgrade.empty();
  if (head.status < 200 && !upgrade) {
    cancel_stream(tunnel::kStreamProtocolError);
    resp_ = Resp::kDone;
    respond_local(502, "The tunnel's agent sent an interim (1xx) response.", false);
    return;
  }
  const bool bodiless = req_.head_request || head.status == 204 || head.status == 304;
  if (upgrade) {
    upgraded_ = true;
    close_after_ = true;  // the connection is the upgraded protocol's from here
    body_kind_ = Body::kOpen;
  } else if (bodiless) {
    body_kind_ = Body::kNone;
  } else if (head.content_length || !head.has_body) {
    body_kind_ = Body::kLength;
    body_length_ = head.content_length.value_or(0);
  } else {
    body_kind_ = Body::kOpen;
  }
  if (head.framed && !upgrade) framed_.emplace();
  head_sent_ = true;
  status_ = head.status;
  resp_ = Resp::kBody;
  sink_.send_response_head(head, req_.head_request, !close_after_);
}

void PublicExchange::append_body(std::span<const uint8_t> data) {
  if (!framed_) return append_data(data);
  // A framed body (§4.1): the framing bytes are credited at once, the data as the client takes it.
  pieces_.clear();
  const tunnel::WireError err = framed_->feed(data, pieces_);
  size_t payload = 0;
  for (auto p : pieces_) payload += p.size();
  dir_.consume(ref_, data.size() - payload);
  const uint64_t generation = generation_;
  const std::vector<std::span<const uint8_t>> pieces = std::move(pieces_);
  for (auto p : pieces) {
    if (generation != generation_ || resp_ != Resp::kBody) {
      dir_.consume(ref_, p.size());
      continue;
    }
    append_data(p);
  }
  if (err != tunnel::WireError::kNone && generation == generation_ && resp_ == Resp::kBody) {
    cancel_stream(tunnel::kStreamProtocolError);
    note_ = std::string("agent sent a bad framed body (") + tunnel::to_string(err) + ")";
    close_after_ = true;
    req_fin_sent_ = true;
    resp_ = Resp::kDone;
    maybe_finish();
  }
}

void PublicExchange::on_response_fin() {
  if (framed_) {
    if (!framed_->done()) {
      // FIN inside a framed body: cut short, as an abort after the head.
      close_after_ = true;
      note_ = "agent ended a framed body early";
      sink_.send_response_end(false);
      return response_complete();
    }
    auto trailers = framed_->take_trailers();
    if (!trailers.empty() && !(body_kind_ == Body::kLength && resp_in_ < body_length_)) sink_.send_trailers(trailers);
  }
  end_body();
}

void PublicExchange::append_data(std::span<const uint8_t> data) {
  if (data.empty()) return;
  switch (body_kind_) {
    case Body::kNone:
      dir_.consume(ref_, data.size());
      break;
    case Body::kLength: {
      const uint64_t allowed = body_length_ - resp_in_;
      const size_t take = static_cast<size_t>(std::min<uint64_t>(allowed, data.size()));
      if (take > 0) sink_.send_response_body(data.first(take), ref_);
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
    case Body::kOpen:
      sink_.send_response_body(data, ref_);
      resp_in_ += data.size();
      break;
  }
}

void PublicExchange::end_body() {
  const bool complete = !(body_kind_ == Body::kLength && resp_in_ < body_length_);
  if (!complete) {
    // The client cannot tell a short body from a slow one except by the connection closing.
    close_after_ = true;
    note_ = "agent sent less than content-length";
  }
  sink_.send_response_end(complete);
  response_complete();
}

void PublicExchange::response_complete() {
  resp_ = Resp::kDone;
  if (attached_ && req_fin_sent_) {
    attached_ = false;
    dir_.release(ref_);
  }
  maybe_finish();
}

void PublicExchange::on_stream_aborted(std::optional<uint32_t> code, std::string_view reason) {
  attached_ = false;  // the directory sends nothing more
  if (resp_ != Resp::kDone && phase_ != Phase::kIdle) {
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
      respond_local(502, detail, req_fin_sent_ && !close_after_);
    } else {
      // Part of the response is out: only ending it uncleanly tells the client it is cut short.
      note_ = "agent aborted the response";
      close_after_ = true;
      req_fin_sent_ = true;
      resp_ = Resp::kDone;
      maybe_finish();
    }
  }
  sink_.exchange_progress();
}

void PublicExchange::on_open_refused(OpenStatus status, std::string_view reason) {
  // The tunnel's session is on another worker, which retried the open as try_open() does here.
  if (status == OpenStatus::kGone || head_sent_ || resp_ == Resp::kDone || phase_ == Phase::kIdle)
    return on_stream_aborted(std::nullopt, reason);
  attached_ = false;
  refuse_open(status, req_fin_sent_ && !close_after_);
  sink_.exchange_progress();
}

}  // namespace wtmesh::edge
