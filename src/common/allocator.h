// Process-wide tuning of glibc's malloc for the relay's allocation pattern.
//
// Each proxied request allocates and frees a few dozen small objects (strings, vectors, Beast
// fields, Asio handlers: ~40 allocations per request in the agent, by heaptrack) and a few large-bin
// buffers (16 KiB stream chunks, 64 KiB read buffers). malloc and free were 10-12 % of the edge's
// and the agent's CPU under wrk (perf), and with fast bins on, every large-bin request first runs
// malloc_consolidate() over the small frees parked in them. With fast bins off, small blocks still
// come from the per-thread tcache, and the rest are coalesced once, as they are freed. Measured with
// bench/run.sh, A/B interleaved on one box: 4-12 % less CPU per request, RSS unchanged
// (bench/README.md, 2026-12-04).
#pragma once

#include <cstddef>

namespace wtmesh {

// Call once, first thing in main(), before other threads exist. Returns false where the C library
// has no such knob (not glibc) or refuses it; nothing else changes then.
bool tune_allocator();

// Gives free heap memory back to the system (malloc_trim) when at least `min_free` bytes of the heap
// are free: after a burst (a flood of connections, a big transfer) glibc keeps the freed memory for
// reuse, and the process would stay at its peak RSS. Cheap when there is little to give back (one
// mallinfo2 call); a trim costs about a millisecond per hundred MiB. Returns true when it trimmed
// (false below the threshold, or not glibc).
bool release_free_memory(size_t min_free);

}  // namespace wtmesh
