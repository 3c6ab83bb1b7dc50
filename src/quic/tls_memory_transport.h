// The ciphertext side of a GnuTLS session driven through memory, sans-I/O: the session's push, pull
// and pull_timeout callbacks write to and read from two buffers here, and a socket driver feeds the
// bytes it received and takes the bytes to send. Shared by the TLS-over-TCP byte streams of both
// sides, agent/tls_client_stream.h and edge/tls_server_stream.h (it lives in quic/, the lowest layer
// that links GnuTLS, so neither of them depends on the other).
//
// The callbacks only record what happened: push copies the bytes out (and never refuses: the owner
// bounds the output by encrypting only while out_held() is under its cap), pull copies bytes in or
// reports EAGAIN (more may come) or 0 (EOF), pull_timeout says whether pull would find anything. They
// never drive the session. Neither buffer has a cap of its own: the owner decides how much it feeds.
#pragma once

#include <gnutls/gnutls.h>

#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

namespace wtmesh::quic {

// Drops the consumed front [0, pos) of a buffer once it is more than half of it (amortised O(1) per
// byte), or all of it once everything was consumed.
template <class Vec>
void compact_consumed(Vec& buf, size_t& pos) {
  if (pos == buf.size()) {
    buf.clear();
    pos = 0;
  } else if (pos > 4096 && pos * 2 > buf.size()) {
    buf.erase(buf.begin(), buf.begin() + static_cast<ptrdiff_t>(pos));
    pos = 0;
  }
}

class TlsMemoryTransport {
 public:
  // One TLS record of plaintext at most is encrypted per send_records() step, so the output never
  // exceeds its owner's cap + one record.
  static constexpr size_t kMaxRecordPlaintext = 16 * 1024;

  TlsMemoryTransport() = default;
  // The session keeps a pointer to this object: it neither moves nor copies.
  TlsMemoryTransport(const TlsMemoryTransport&) = delete;
  TlsMemoryTransport& operator=(const TlsMemoryTransport&) = delete;

  // Installs the callbacks on `session` (its transport pointer becomes this object, so the owner
  // keeps its own pointer with gnutls_session_set_ptr if it needs one). Must outlive the session's
  // use of it.
  void attach(gnutls_session_t session);

  // --- ciphertext in, from the socket ---
  size_t in_held() const { return in_.size() - in_pos_; }  // received, not yet pulled by GnuTLS
  // Room left under `cap` held bytes; 0 once the input ended.
  size_t space_in(size_t cap) const;
  // Appends all of `bytes` (the owner has bounded them by space_in()).
  void feed(std::span<const uint8_t> bytes);
  // No more ciphertext will come: pull reports EOF once the held bytes are pulled.
  void set_eof() { eof_ = true; }
  bool eof() const { return eof_; }
  bool drained() const { return eof_ && in_held() == 0; }  // the input ended and was all pulled

  // --- ciphertext out, to the socket ---
  std::span<const uint8_t> output() const { return std::span<const uint8_t>(out_).subspan(out_pos_); }
  size_t out_held() const { return out_.size() - out_pos_; }
  size_t space_out(size_t cap) const { return out_held() >= cap ? 0 : cap - out_held(); }
  // Encrypts `data` through the attached session, a record at a time, while the pending output is
  // under `cap`; returns how much it took. A GnuTLS error stops it and is put in *error (else 0).
  size_t send_records(std::span<const uint8_t> data, size_t cap, int* error);
  void consume_output(size_t n);
  // Moves the pending output into `into` (replacing its contents): the socket writer's buffer and
  // ours swap storage instead of copying when nothing was consumed yet.
  void take_output(std::vector<uint8_t>& into);
  void clear_output();

 private:
  static ssize_t push(gnutls_transport_ptr_t ptr, const void* data, size_t n);
  static ssize_t pull(gnutls_transport_ptr_t ptr, void* data, size_t n);
  static int pull_timeout(gnutls_transport_ptr_t ptr, unsigned ms);

  gnutls_session_t session_ = nullptr;  // for the errno pull reports (EAGAIN)
  std::vector<uint8_t> in_;
  size_t in_pos_ = 0;  // bytes of in_ GnuTLS already pulled
  std::vector<uint8_t> out_;
  size_t out_pos_ = 0;  // bytes of out_ the socket writer already took
  bool eof_ = false;
};

}  // namespace wtmesh::quic
