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

bool release_free_memory(size_t min_free) {
#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 33))
  // fordblks counts free chunks inside the heap too, which malloc_trim returns page by page.
  if (mallinfo2().fordblks < min_free) return false;
  malloc_trim(0);
  return true;
#else
  (void)min_free;
  return false;
#endif
}

}  // namespace wtmesh
