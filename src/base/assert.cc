#include "base/assert.h"

#include <cstdio>
#include <cstdlib>

namespace synod::base {

void assert_failed(std::string_view condition, std::string_view why,
                   const std::source_location& where) {
  // stderr is the one output the core may touch: the process is about to end.
  std::fprintf(stderr, "synod: assertion failed: %.*s (%.*s) at %s:%u in %s\n",
               static_cast<int>(condition.size()), condition.data(),
               static_cast<int>(why.size()), why.data(), where.file_name(),
               static_cast<unsigned>(where.line()), where.function_name());
  std::fflush(stderr);
  std::abort();
}

}  // namespace synod::base
