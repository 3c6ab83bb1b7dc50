// Test support: drive an io_context until a condition holds or a time limit passes (bounded loops
// that stop by themselves). Shared by the unit and integration tests that run real sockets.
#pragma once

#include <boost/asio/io_context.hpp>
#include <chrono>
#include <functional>

namespace wtmesh::test {

enum class Turn {
  kOneHandler,  // `done` is checked after every handler (run_one_for)
  kSlice,       // `done` is checked once per slice of handlers (run_for): for a `done` with side effects
};

// Runs `io` until `done()` holds (true) or `limit` passes (false). Each turn waits at most `slice`.
inline bool run_io_until(boost::asio::io_context& io, const std::function<bool()>& done,
                         std::chrono::milliseconds limit, Turn turn = Turn::kOneHandler,
                         std::chrono::milliseconds slice = std::chrono::milliseconds(5)) {
  const auto deadline = std::chrono::steady_clock::now() + limit;
  for (;;) {
    if (done()) return true;
    if (std::chrono::steady_clock::now() >= deadline) return false;
    if (turn == Turn::kOneHandler) {
      io.run_one_for(slice);
    } else {
      io.run_for(slice);
    }
    if (io.stopped()) io.restart();
  }
}

}  // namespace wtmesh::test
