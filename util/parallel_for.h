// ParallelFor: one loop cut into contiguous pieces, one thread per piece. For the few places
// that read a whole pool image at once (the recovery scan, fsck), where the work per item is
// even and a thread pool would be more machinery than the loop.
//
// Thread-safety: work runs on up to `threads` threads at once, each on its own [first, last).
#pragma once

#include <algorithm>
#include <cstddef>
#include <thread>
#include <vector>

namespace cxlkv {

// Runs work(first, last, t) over [0, n) cut into min(threads, n) pieces (at least one, so
// work(0, 0, 0) runs for n = 0), the first on the calling thread; returns when all are done.
template <typename Work>
void ParallelFor(std::size_t n, unsigned threads, Work work) {
  const auto pieces =
      static_cast<unsigned>(std::max<std::size_t>(1, std::min<std::size_t>(threads, n)));
  std::vector<std::thread> others;
  for (unsigned t = 1; t < pieces; ++t) {
    others.emplace_back(work, n * t / pieces, n * (t + 1) / pieces, t);
  }
  work(std::size_t{0}, n / pieces, 0u);
  for (std::thread& th : others) th.join();
}

}  // namespace cxlkv
