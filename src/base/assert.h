// Always-on assertions for invariants.
//
// A broken invariant in a database is a bug that is about to corrupt data. We
// stop the process loudly (with the condition, the reason and the location)
// rather than continue quietly, in release builds as much as in debug ones.
#pragma once

#include <source_location>
#include <string_view>

namespace synod::base {

[[noreturn]] void assert_failed(std::string_view condition, std::string_view why,
                                const std::source_location& where);

}  // namespace synod::base

#define SYNOD_ASSERT(cond, why)                                                      \
  do {                                                                               \
    if (!(cond)) [[unlikely]] {                                                      \
      ::synod::base::assert_failed(#cond, (why), std::source_location::current());   \
    }                                                                                \
  } while (0)

#define SYNOD_UNREACHABLE(why) \
  ::synod::base::assert_failed("unreachable", (why), std::source_location::current())
