#include "common/allocator.h"

#include <cstdlib>  // defines __GLIBC__ where it applies

#if defined(__GLIBC__)
#include <malloc.h>
#endif

namespace wtmesh {

bool tune_allocator() {
#if defined(__GLIBC__)
  return mallopt(M_MXFAST, 0) == 1;  // no fast bins (see the header)
#else
  return false;
#endif
}

}  // namespace wtmesh
