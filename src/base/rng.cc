#include "base/rng.h"

#include "base/assert.h"

namespace synod::base {

uint64_t Rng::uniform(uint64_t bound) {
  SYNOD_ASSERT(bound > 0, "uniform() needs a non-empty range");
  unsigned __int128 product = static_cast<unsigned __int128>(next()) * bound;
  auto low = static_cast<uint64_t>(product);
  if (low < bound) {
    const uint64_t threshold = -bound % bound;
    while (low < threshold) {
      product = static_cast<unsigned __int128>(next()) * bound;
      low = static_cast<uint64_t>(product);
    }
  }
  return static_cast<uint64_t>(product >> 64);
}

}  // namespace synod::base
