#include "quic/tls_resumption.h"

#include <stdexcept>
#include <string>

namespace wtmesh::quic {

void TlsServerContext::enable_resumption(std::span<const uint8_t> ticket_key, size_t replay_capacity) {
  constexpr size_t kTicketKeySize = 64;  // GnuTLS' TICKET_MASTER_KEY_SIZE
  if (ticket_key.size() != kTicketKeySize) {
    throw std::invalid_argument("a session ticket key is 64 bytes, got " + std::to_string(ticket_key.size()));
  }
  resumption_ =
      std::make_shared<Resumption>(ticket_key, std::make_shared<SharedReplayStore>(replay_capacity));
}

void TlsServerContext::share_resumption_across_threads(const TlsServerContext& other) {
  if (!other.resumption_) return;
  resumption_ = std::make_shared<Resumption>(other.resumption_->key, other.resumption_->replays);
}

const AntiReplayStore* TlsServerContext::replay_store() const {
  return resumption_ ? &resumption_->replays->store : nullptr;
}

}  // namespace wtmesh::quic
