// Small RAII helpers for GnuTLS objects, shared by the layers that use GnuTLS directly (quic: the
// certificate state; tunnel: ES256 keys). Header-only, so wtmesh_common itself needs no GnuTLS: include
// it only from layers that link PkgConfig::GNUTLS.
#pragma once

#include <gnutls/gnutls.h>

#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>
#include <type_traits>

namespace wtmesh::gnutls {

// A datum GnuTLS allocated for us (exports, encodings): freed with gnutls_free.
struct Datum {
  gnutls_datum_t d{nullptr, 0};
  Datum() = default;
  Datum(const Datum&) = delete;
  Datum& operator=(const Datum&) = delete;
  ~Datum() { gnutls_free(d.data); }
  std::string str() const { return std::string(reinterpret_cast<const char*>(d.data), d.size); }
};

// A non-owning datum over `s`, for GnuTLS inputs (which it does not modify).
inline gnutls_datum_t view(std::string_view s) {
  return {reinterpret_cast<unsigned char*>(const_cast<char*>(s.data())), static_cast<unsigned>(s.size())};
}

// unique_ptr for a GnuTLS handle type `T` (a pointer typedef) released by `Deinit`, e.g.
// Handle<gnutls_x509_crt_t, gnutls_x509_crt_deinit>.
template <typename T, void (*Deinit)(T)>
struct Deleter {
  void operator()(T p) const { Deinit(p); }
};
template <typename T, void (*Deinit)(T)>
using Handle = std::unique_ptr<std::remove_pointer_t<T>, Deleter<T, Deinit>>;

// gnutls_global_init once per process (later calls only count references), before the first use.
inline void global_init() {
  static const int rv = gnutls_global_init();
  if (rv < 0) throw std::runtime_error(std::string("gnutls_global_init failed: ") + gnutls_strerror(rv));
}

}  // namespace wtmesh::gnutls
