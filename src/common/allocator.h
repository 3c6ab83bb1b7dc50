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

namespace wtmesh {

// Call once, first thing in main(), before other threads exist. Returns false where the C library
// has no such knob (not glibc) or refuses it; nothing else changes then.
bool tune_allocator();

}  // namespace wtmesh
