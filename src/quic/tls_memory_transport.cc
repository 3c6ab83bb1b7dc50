#include "quic/tls_memory_transport.h"

#include <errno.h>

#include <algorithm>
#include <cstring>

namespace wtmesh::quic {

void TlsMemoryTransport::attach(gnutls_session_t session) {
  session_ = session;
  gnutls_transport_set_ptr(session, this);
  gnutls_transport_set_push_function(session, &TlsMemoryTransport::push);
  gnutls_transport_set_pull_function(session, &TlsMemoryTransport::pull);
  gnutls_transport_set_pull_timeout_function(session, &TlsMemoryTransport::pull_timeout);
}

size_t TlsMemoryTransport::space_in(size_t cap) const {
  if (eof_) return 0;
  const size_t held = in_held();
  return held >= cap ? 0 : cap - held;
}

void TlsMemoryTransport::feed(std::span<const uint8_t> bytes) {
  in_.insert(in_.end(), bytes.begin(), bytes.end());
}

size_t TlsMemoryTransport::send_records(std::span<const uint8_t> data, size_t cap, int* error) {
  *error = 0;
  size_t taken = 0;
  while (taken < data.size() && space_out(cap) > 0) {
    const size_t chunk = std::min({data.size() - taken, kMaxRecordPlaintext, space_out(cap)});
    ssize_t rv;
    do {
      rv = gnutls_record_send(session_, data.data() + taken, chunk);
    } while (rv == GNUTLS_E_INTERRUPTED);
    if (rv < 0) {
      *error = static_cast<int>(rv);
      break;
    }
    taken += static_cast<size_t>(rv);
  }
  return taken;
}

void TlsMemoryTransport::consume_output(size_t n) {
  out_pos_ += std::min(n, out_held());
  compact_consumed(out_, out_pos_);
}

void TlsMemoryTransport::take_output(std::vector<uint8_t>& into) {
  if (out_pos_ == 0) {
    into.clear();
    into.swap(out_);
  } else {
    into.assign(out_.begin() + static_cast<ptrdiff_t>(out_pos_), out_.end());
    clear_output();
  }
}

void TlsMemoryTransport::clear_output() {
  out_.clear();
  out_pos_ = 0;
}

ssize_t TlsMemoryTransport::push(gnutls_transport_ptr_t ptr, const void* data, size_t n) {
  auto* self = static_cast<TlsMemoryTransport*>(ptr);
  const auto* p = static_cast<const uint8_t*>(data);
  self->out_.insert(self->out_.end(), p, p + n);
  return static_cast<ssize_t>(n);
}

ssize_t TlsMemoryTransport::pull(gnutls_transport_ptr_t ptr, void* data, size_t n) {
  auto* self = static_cast<TlsMemoryTransport*>(ptr);
  const size_t avail = self->in_held();
  if (avail == 0) {
    if (self->eof_) return 0;
    // Only records the errno GnuTLS reads back when pull returns -1 (the documented way for
    // transport callbacks); it does not drive the session.
    gnutls_transport_set_errno(self->session_, EAGAIN);
    return -1;
  }
  const size_t k = std::min(n, avail);
  std::memcpy(data, self->in_.data() + self->in_pos_, k);
  self->in_pos_ += k;
  compact_consumed(self->in_, self->in_pos_);
  return static_cast<ssize_t>(k);
}

int TlsMemoryTransport::pull_timeout(gnutls_transport_ptr_t ptr, unsigned /*ms*/) {
  const auto* self = static_cast<const TlsMemoryTransport*>(ptr);
  return (self->in_held() > 0 || self->eof_) ? 1 : 0;
}

}  // namespace wtmesh::quic
