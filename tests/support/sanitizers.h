// Whether this test binary is built with AddressSanitizer (gcc defines __SANITIZE_ADDRESS__, clang
// answers __has_feature). Tests whose figure ASan changes by design (RSS: freed blocks sit in its
// quarantine; latency: every access is checked) say so and check something else.
#pragma once

#if defined(__SANITIZE_ADDRESS__)
#define WTMESH_TEST_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define WTMESH_TEST_ASAN 1
#endif
#endif
#ifndef WTMESH_TEST_ASAN
#define WTMESH_TEST_ASAN 0
#endif

namespace wtmesh::test {
inline constexpr bool kUnderAsan = WTMESH_TEST_ASAN != 0;
}  // namespace wtmesh::test
