#include "edge/echo_service.h"

#include <spdlog/spdlog.h>


namespace wtmesh::edge {

void EchoSession::on_incoming_stream(wt::StreamId id, bool bidi) {
  Pipe p;
  if (bidi) {
    p.out = id;
  } else if (auto out = session_->open_uni_stream()) {
    p.out = *out;
  } else {
    // No uni stream credit from the client: refuse rather than buffer without bound.
    session_->stop_sending(id, 1);
    return;
  }
  pipes_.emplace(id, std::move(p));
}

void EchoSession::on_stream_data(wt::StreamId id, std::span<const uint8_t> data, bool fin) {
  auto it = pipes_.find(id);
  if (it == pipes_.end() || it->second.done) {
    session_->consume(id, data.size());  // a refused or aborted stream: drop
    return;
  }
  it->second.held.insert(it->second.held.end(), data.begin(), data.end());
  it->second.fin = it->second.fin || fin;
  pump(id);
}

void EchoSession::pump(wt::StreamId in) {
  auto it = pipes_.find(in);
  if (it == pipes_.end()) return;
  Pipe& p = it->second;
  if (p.done) return;
  const size_t n = session_->write(p.out, p.held, p.fin);
  if (n > 0) {
    p.held.erase(p.held.begin(), p.held.begin() + static_cast<std::ptrdiff_t>(n));
    session_->consume(in, n);
  }
  if (p.held.empty() && p.fin) p.done = true;
}

EchoSession::Pipe* EchoSession::pipe_for_output(wt::StreamId out, wt::StreamId* in) {
  for (auto& [id, p] : pipes_) {
    if (p.out == out) {
      *in = id;
      return &p;
    }
  }
  return nullptr;
}

void EchoSession::on_stream_writable(wt::StreamId id) {
  wt::StreamId in = -1;
  if (pipe_for_output(id, &in)) pump(in);
}

void EchoSession::on_stream_reset(wt::StreamId id, std::optional<uint32_t> code) {
  // The peer aborted its side: abort our echo of it with the same code.
  auto it = pipes_.find(id);
  if (it == pipes_.end()) return;
  if (!it->second.done) session_->reset_stream(it->second.out, code.value_or(0));
  it->second.done = true;
  it->second.held.clear();
}

void EchoSession::on_stop_sending(wt::StreamId id, std::optional<uint32_t> code) {
  wt::StreamId in = -1;
  if (Pipe* p = pipe_for_output(id, &in)) {
    p->done = true;
    p->held.clear();
    // A uni pipe's source is a different stream: tell the peer to stop sending it too.
    if (in != id) session_->stop_sending(in, code.value_or(0));
  }
}

void EchoSession::on_stream_closed(wt::StreamId id) {
  // Forget a pipe once both its ends are gone (CVE-2026-21438: no state for closed streams).
  for (auto it = pipes_.begin(); it != pipes_.end();) {
    Pipe& p = it->second;
    if (it->first == id) p.in_closed = true;
    if (p.out == id) p.out_closed = true;
    if (p.in_closed && p.out_closed) {
      it = pipes_.erase(it);
    } else {
      ++it;
    }
  }
}

void EchoSession::on_datagram(std::span<const uint8_t> payload) { session_->send_datagram(payload); }

void EchoSession::on_closed(uint32_t code, std::string_view reason) {
  closed_ = true;
  pipes_.clear();
  spdlog::info("echo: session closed code={} reason=\"{}\"", code, reason);
}

}  // namespace wtmesh::edge
