// A small, fast, seeded pseudo-random generator (xoshiro256**, seeded through
// SplitMix64). The core never draws randomness it was not given: whoever owns
// a core object hands it a seed, so a run can be replayed from that seed.
#pragma once

#include <cstdint>

namespace synod::base {

class Rng {
 public:
  explicit Rng(uint64_t seed) { reseed(seed); }

  void reseed(uint64_t seed) {
    for (uint64_t& word : state_) word = split_mix(seed);
  }

  uint64_t next() {
    const uint64_t result = rotl(state_[1] * 5, 7) * 9;
    const uint64_t t = state_[1] << 17;
    state_[2] ^= state_[0];
    state_[3] ^= state_[1];
    state_[1] ^= state_[2];
    state_[0] ^= state_[3];
    state_[2] ^= t;
    state_[3] = rotl(state_[3], 45);
    return result;
  }

  // Uniform in [0, bound); bound must be > 0. Lemire's multiply-shift with
  // rejection, so there is no modulo bias.
  uint64_t uniform(uint64_t bound);

  // Uniform in [low, high] inclusive.
  uint64_t between(uint64_t low, uint64_t high) { return low + uniform(high - low + 1); }

  // True with probability numerator/denominator.
  bool chance(uint64_t numerator, uint64_t denominator) {
    return uniform(denominator) < numerator;
  }

  // Uniform double in [0, 1).
  double unit() { return static_cast<double>(next() >> 11) * 0x1.0p-53; }

  // A generator whose stream is independent of this one's future draws.
  Rng fork() { return Rng(next()); }

 private:
  static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }
  static uint64_t split_mix(uint64_t& x) {
    uint64_t z = (x += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
  }

  uint64_t state_[4];
};

}  // namespace synod::base
