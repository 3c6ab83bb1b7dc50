# Third-party libraries, as wtmesh_dep_* interface targets that the layer libraries link.
#
# By default these are Debian's shared libraries. With -DWTMESH_STATIC_DEPS=ON they are the static
# archives Debian ships (ngtcp2, ngtcp2_crypto_gnutls, nghttp3, nghttp2, yaml-cpp, GnuTLS with nettle, hogweed,
# gmp, libtasn1 and libidn2), spdlog and fmt are compiled in header-only, libstdc++ and libgcc are linked
# statically, and unused sections are dropped. Each shared object a process maps costs resident pages
# for its relocations, GOT, init code and the code around them, whichever functions are used; that is
# most of the agent's RSS (bench/README.md, "Agent memory"). p11-kit, libunistring and libc stay shared:
# Debian has no static archive of them. The bench and CI's test run (.ci/run) build this way.

option(WTMESH_STATIC_DEPS "Link static archives of ngtcp2, nghttp3, nghttp2, GnuTLS, yaml-cpp, libstdc++" OFF)

find_package(PkgConfig REQUIRED)
pkg_check_modules(NGTCP2 REQUIRED IMPORTED_TARGET libngtcp2>=1.11)
pkg_check_modules(NGTCP2_CRYPTO REQUIRED IMPORTED_TARGET libngtcp2_crypto_gnutls>=1.11)
pkg_check_modules(NGHTTP3 REQUIRED IMPORTED_TARGET libnghttp3>=1.8)
pkg_check_modules(NGHTTP2 REQUIRED IMPORTED_TARGET libnghttp2>=1.52)
pkg_check_modules(GNUTLS REQUIRED IMPORTED_TARGET gnutls)
find_package(Boost 1.83 REQUIRED CONFIG)
find_package(spdlog REQUIRED)
find_package(CLI11 REQUIRED)
find_package(nlohmann_json 3 REQUIRED)
find_package(yaml-cpp REQUIRED)
find_package(Threads REQUIRED)

add_library(wtmesh_dep_log INTERFACE)     # spdlog (+ fmt)
add_library(wtmesh_dep_tls INTERFACE)     # GnuTLS
add_library(wtmesh_dep_quic INTERFACE)    # ngtcp2 + its GnuTLS crypto backend
add_library(wtmesh_dep_qpack INTERFACE)   # nghttp3 (QPACK only)
add_library(wtmesh_dep_h2 INTERFACE)      # nghttp2 (the public HTTP/2 codec)
add_library(wtmesh_dep_yaml INTERFACE)    # yaml-cpp

if(NOT WTMESH_STATIC_DEPS)
  target_link_libraries(wtmesh_dep_log INTERFACE spdlog::spdlog)
  target_link_libraries(wtmesh_dep_tls INTERFACE PkgConfig::GNUTLS)
  target_link_libraries(wtmesh_dep_quic INTERFACE PkgConfig::NGTCP2_CRYPTO PkgConfig::NGTCP2 wtmesh_dep_tls)
  target_link_libraries(wtmesh_dep_qpack INTERFACE PkgConfig::NGHTTP3)
  target_link_libraries(wtmesh_dep_h2 INTERFACE PkgConfig::NGHTTP2)
  target_link_libraries(wtmesh_dep_yaml INTERFACE yaml-cpp)
  return()
endif()

# wtmesh_static_archives(OUT name...): the full path of lib<name>.a for each name, or the bare name
# (a shared library) where Debian ships no archive.
function(wtmesh_static_archives out)
  set(items)
  foreach(name IN LISTS ARGN)
    find_library(WTMESH_ARCHIVE_${name} NAMES lib${name}.a)
    if(WTMESH_ARCHIVE_${name})
      list(APPEND items ${WTMESH_ARCHIVE_${name}})
    else()
      list(APPEND items ${name})
    endif()
  endforeach()
  set(${out} ${items} PARENT_SCOPE)
endfunction()

find_package(fmt REQUIRED)
get_target_property(spdlog_includes spdlog::spdlog_header_only INTERFACE_INCLUDE_DIRECTORIES)
target_include_directories(wtmesh_dep_log SYSTEM INTERFACE ${spdlog_includes})
target_compile_definitions(wtmesh_dep_log INTERFACE SPDLOG_FMT_EXTERNAL)
target_link_libraries(wtmesh_dep_log INTERFACE fmt::fmt-header-only Threads::Threads)

# ngtcp2 and its crypto backend, then GnuTLS's own pkg-config --static list, archives where they exist,
# all in one link group: the order among them (and nettle, hogweed, gmp) then does not matter, and
# wherever the linker meets the group first (tunnel/ also uses GnuTLS) it resolves all of it.
wtmesh_static_archives(tls_libs ngtcp2_crypto_gnutls ngtcp2 ${GNUTLS_STATIC_LIBRARIES})
target_include_directories(wtmesh_dep_tls SYSTEM INTERFACE ${NGTCP2_CRYPTO_INCLUDE_DIRS} ${NGTCP2_INCLUDE_DIRS}
  ${GNUTLS_INCLUDE_DIRS})
target_link_libraries(wtmesh_dep_tls INTERFACE -Wl,--start-group ${tls_libs} -Wl,--end-group)
target_link_libraries(wtmesh_dep_quic INTERFACE wtmesh_dep_tls)

wtmesh_static_archives(qpack_libs nghttp3)
target_include_directories(wtmesh_dep_qpack SYSTEM INTERFACE ${NGHTTP3_INCLUDE_DIRS})
target_link_libraries(wtmesh_dep_qpack INTERFACE ${qpack_libs})

wtmesh_static_archives(h2_libs nghttp2)
target_include_directories(wtmesh_dep_h2 SYSTEM INTERFACE ${NGHTTP2_INCLUDE_DIRS})
target_link_libraries(wtmesh_dep_h2 INTERFACE ${h2_libs})

wtmesh_static_archives(yaml_libs yaml-cpp)
get_target_property(yaml_includes yaml-cpp INTERFACE_INCLUDE_DIRECTORIES)
if(yaml_includes)
  target_include_directories(wtmesh_dep_yaml SYSTEM INTERFACE ${yaml_includes})
endif()
target_link_libraries(wtmesh_dep_yaml INTERFACE ${yaml_libs})

add_compile_options(-ffunction-sections -fdata-sections)
add_link_options(-static-libstdc++ -static-libgcc -Wl,--gc-sections)
