// The server side of session resumption (quic/session_tickets.h), internal to quic/tls_context.cc and
// quic/tls_resumption.cc: the ticket key a TlsServerContext seals tickets with, GnuTLS's anti-replay
// object of that context, and the store of early-data ClientHellos seen, which the contexts of
// several threads may share (TlsServerContext::share_resumption_across_threads).
#pragma once

#include <gnutls/gnutls.h>

#include <cstdint>
#include <ctime>
#include <memory>
#include <mutex>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "quic/session_tickets.h"
#include "quic/tls_context.h"

namespace wtmesh::quic {

// The early-data ClientHellos seen, shared by the contexts of several threads.
struct SharedReplayStore {
  std::mutex m;
  AntiReplayStore store;
  explicit SharedReplayStore(size_t capacity) : store(capacity) {}
};

struct TlsServerContext::Resumption {
  std::vector<uint8_t> key;
  gnutls_anti_replay_t anti_replay = nullptr;  // this context's (and its renewals'): one thread
  std::shared_ptr<SharedReplayStore> replays;

  Resumption(std::span<const uint8_t> ticket_key, std::shared_ptr<SharedReplayStore> store)
      : key(ticket_key.begin(), ticket_key.end()), replays(std::move(store)) {
    if (int rv = gnutls_anti_replay_init(&anti_replay); rv < 0) {
      throw std::runtime_error(std::string("gnutls_anti_replay_init: ") + gnutls_strerror(rv));
    }
    gnutls_anti_replay_set_add_function(anti_replay, &Resumption::add);
    gnutls_anti_replay_set_ptr(anti_replay, this);
  }
  Resumption(const Resumption&) = delete;
  Resumption& operator=(const Resumption&) = delete;
  ~Resumption() {
    if (anti_replay != nullptr) gnutls_anti_replay_deinit(anti_replay);
    gnutls_memset(key.data(), 0, key.size());
  }
  // GnuTLS' add function: 0 to accept the early data, an error to refuse it (the handshake goes on).
  // GnuTLS's key is 12 bytes of its window start, then the ClientHello's PSK binder, which alone is
  // unique to one ClientHello: keyed by the binder, a replay is caught by whichever context sees it.
  static int add(void* ptr, time_t expires, const gnutls_datum_t* key, const gnutls_datum_t* /*data*/) {
    auto* self = static_cast<Resumption*>(ptr);
    constexpr size_t kWindowPrefix = 12;
    std::string_view k(reinterpret_cast<const char*>(key->data), key->size);
    if (k.size() > kWindowPrefix) k.remove_prefix(kWindowPrefix);
    AntiReplayStore::Result r;
    {
      std::lock_guard lock(self->replays->m);
      r = self->replays->store.add(k, expires, std::time(nullptr));
    }
    switch (r) {
      case AntiReplayStore::Result::kAdded:
        return 0;
      case AntiReplayStore::Result::kReplay:
        return GNUTLS_E_DB_ENTRY_EXISTS;
      case AntiReplayStore::Result::kFull:
        break;
    }
    return GNUTLS_E_DB_ERROR;
  }
};

}  // namespace wtmesh::quic
