// The edge's certificate state directory: a long-lived local CA and a short-lived ECDSA P-256 leaf.
//
// The leaf is kept within Chromium's serverCertificateHashes rules (ECDSA, validity <= 14 days), so
// pages can trust it by its SHA-256 alone, and is renewed well before it expires. Everything here
// runs at startup or on a renewal timer, never on the packet path.
#pragma once

#include <chrono>
#include <filesystem>
#include <string>
#include <vector>

namespace wtmesh::quic {

struct CertFiles {
  std::filesystem::path ca_cert;  // DIR/ca.pem  (local CA certificate)
  std::filesystem::path cert;     // DIR/cert.pem (leaf only, no chain)
  std::filesystem::path key;      // DIR/key.pem  (leaf private key, PKCS#8 PEM, mode 0600)
  std::string sha256_hex;         // lower-case hex SHA-256 of the leaf's DER, also in DIR/cert.sha256
  std::chrono::system_clock::time_point not_after;  // leaf expiry
};

// Longest leaf validity Chromium accepts for serverCertificateHashes, and what we issue:
// notBefore = now - kLeafBackdate, notAfter = now + kLeafLifetime (total 13 days 1 hour).
inline constexpr std::chrono::hours kMaxLeafValidity{14 * 24};
inline constexpr std::chrono::hours kLeafBackdate{1};
inline constexpr std::chrono::hours kLeafLifetime{13 * 24};

// Loads, creates or renews the certificates in `dir` (created with mode 0700 if missing).
//  - Local CA (ca.pem + ca.key, ECDSA P-256, ~10 years): created when both files are absent and kept
//    afterwards. A CA that is half present, unparsable, mismatched or about to expire is an error
//    (we never silently replace a CA that agents may already trust). Its critical nameConstraints
//    permit only the leaf's names: the DNS subtrees of localhost and of each extra name ("*." dropped),
//    127.0.0.0/8, ::1/128 and each extra IP address. A CA without them (made by an older wtmesh), or
//    whose constraints miss a wanted name (another --domain), is replaced with a warning, and with it
//    the leaf: whoever trusted the old ca.pem must trust the new one.
//  - Leaf (cert.pem + key.pem): regenerated when missing, unparsable, not ECDSA P-256, key mismatch,
//    not signed by the CA, not yet valid, longer than kMaxLeafValidity, expiring within
//    `renew_before` of `now`, or when its SANs miss localhost, *.localhost, 127.0.0.1, ::1 or any
//    of `extra_names` (DNS names, or IP literals, "[v6]" accepted).
//  - cert.sha256 holds sha256_hex + "\n".
// `renew_before` must be in [0, kLeafLifetime). Files are written atomically (temp file + rename), private
// keys with mode 0600; a lock file (DIR/.lock) serialises concurrent callers. Throws std::runtime_error
// naming the file and reason.
CertFiles ensure_state_certs(const std::filesystem::path& dir, const std::vector<std::string>& extra_names = {},
                             std::chrono::hours renew_before = std::chrono::hours(96),
                             std::chrono::system_clock::time_point now = std::chrono::system_clock::now());

// Lower-case hex SHA-256 of the DER of the first certificate in a PEM file. Throws std::runtime_error.
std::string sha256_hex_of_cert_file(const std::filesystem::path& pem);

}  // namespace wtmesh::quic
