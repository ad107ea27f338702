// The RESP parser and writer: what Redis accepts is accepted, in any split
// of the bytes; what Redis refuses is refused with Redis's words; no length
// is trusted before it is checked.
#include <gtest/gtest.h>

#include "api/resp.h"

namespace synod::api {
namespace {

using Args = std::vector<std::string>;

// Feeds `bytes` (in pieces of `step`) and collects every command, or the error.
std::pair<std::vector<Args>, std::string> parse_all(std::string_view bytes, size_t step = 0,
                                                    RespLimits limits = {}) {
  RespParser parser(limits);
  std::vector<Args> commands;
  std::string error;
  auto drain = [&] {
    Args args;
    while (true) {
      const auto status = parser.next(&args, &error);
      if (status == RespParser::Status::kCommand) {
        commands.push_back(args);
        continue;
      }
      return status == RespParser::Status::kError;
    }
  };
  if (step == 0) step = bytes.size() + 1;
  for (size_t at = 0; at < bytes.size(); at += step) {
    parser.feed(bytes.substr(at, step));
    if (drain()) break;
  }
  return {commands, error};
}

TEST(RespParser, MultibulkCommandsInAnySplit) {
  const std::string bytes =
      "*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$5\r\nv\r\nab\r\n*2\r\n$3\r\nGET\r\n$1\r\nk\r\n*1\r\n$0\r\n\r\n";
  const std::vector<Args> expected = {{"SET", "k", "v\r\nab"}, {"GET", "k"}, {""}};
  for (size_t step : {0, 1, 2, 3, 7}) {
    auto [commands, error] = parse_all(bytes, step);
    EXPECT_EQ(error, "") << "step " << step;
    EXPECT_EQ(commands, expected) << "step " << step;
  }
}

TEST(RespParser, InlineCommandsWithRedisQuoting) {
  auto [commands, error] = parse_all(
      "PING\r\nSET k \"a b\\x41\\n\" \r\n  \r\nECHO 'it\\'s'\n");
  ASSERT_EQ(error, "");
  ASSERT_EQ(commands.size(), 3u);
  EXPECT_EQ(commands[0], Args({"PING"}));
  EXPECT_EQ(commands[1], Args({"SET", "k", "a bA\n"}));
  EXPECT_EQ(commands[2], Args({"ECHO", "it's"}));
  // 'it''s' is refused: a closing quote must be followed by a space.
  auto [none, quotes] = parse_all("SET 'it''s'\r\n");
  EXPECT_EQ(quotes, "ERR Protocol error: unbalanced quotes in request");
  auto [none2, open] = parse_all("ECHO \"abc\r\n");
  EXPECT_EQ(open, "ERR Protocol error: unbalanced quotes in request");
}

TEST(RespParser, ProtocolErrorsUseRedisWording) {
  EXPECT_EQ(parse_all("*x\r\n").second, "ERR Protocol error: invalid multibulk length");
  EXPECT_EQ(parse_all("*2\r\n$3\r\nGET\r\n:1\r\n").second,
            "ERR Protocol error: expected '$', got ':'");
  EXPECT_EQ(parse_all("*1\r\n$-5\r\n").second, "ERR Protocol error: invalid bulk length");
  EXPECT_EQ(parse_all("*1\r\n$abc\r\n").second, "ERR Protocol error: invalid bulk length");
  // The error is final: later, valid bytes are not parsed.
  auto [commands, error] = parse_all("*x\r\nPING\r\n");
  EXPECT_TRUE(commands.empty());
}

TEST(RespParser, LengthsAreCheckedBeforeAnythingIsAllocated) {
  RespLimits limits;
  limits.bulk_bytes_max = 100;
  limits.arguments_max = 10;
  limits.inline_bytes_max = 64;
  limits.query_buffer_bytes_max = 1000;
  EXPECT_EQ(parse_all("*1\r\n$101\r\n", 0, limits).second,
            "ERR Protocol error: invalid bulk length");
  EXPECT_EQ(parse_all("*1\r\n$99999999999999999999\r\n", 0, limits).second,
            "ERR Protocol error: invalid bulk length");
  EXPECT_EQ(parse_all("*11\r\n", 0, limits).second, "ERR Protocol error: invalid multibulk length");
  EXPECT_EQ(parse_all("*2147483648000\r\n", 0, limits).second,
            "ERR Protocol error: invalid multibulk length");
  EXPECT_EQ(parse_all(std::string(65, 'a'), 0, limits).second,
            "ERR Protocol error: too big inline request");
  EXPECT_EQ(parse_all("*" + std::string(70, '1'), 0, limits).second,
            "ERR Protocol error: too big mbulk count string");
  EXPECT_EQ(parse_all("*1\r\n$" + std::string(70, '1'), 0, limits).second,
            "ERR Protocol error: too big bulk count string");
  // A client may not buffer more than its share, even for an allowed bulk.
  limits.query_buffer_bytes_max = 60;
  auto [commands, error] = parse_all("*1\r\n$100\r\n" + std::string(102, 'x'), 10, limits);
  EXPECT_NE(error.find("query buffer"), std::string::npos) << error;
}

TEST(RespParser, EmptyRequestsAreSkipped) {
  auto [commands, error] = parse_all("*0\r\n*-1\r\n\r\nPING\r\n");
  EXPECT_EQ(error, "");
  EXPECT_EQ(commands, std::vector<Args>({{"PING"}}));
}

TEST(RespWriter, Resp2AndResp3) {
  RespWriter two(2);
  two.simple("OK");
  two.error("ERR x");
  two.integer(-5);
  two.bulk("a\r\nb");
  two.null();
  two.map(1);
  two.bulk("k");
  two.boolean(true);
  EXPECT_EQ(two.take(), "+OK\r\n-ERR x\r\n:-5\r\n$4\r\na\r\nb\r\n$-1\r\n*2\r\n$1\r\nk\r\n:1\r\n");
  RespWriter three(3);
  three.null();
  three.map(1);
  three.set(0);
  three.boolean(false);
  three.null_array();
  EXPECT_EQ(three.take(), "_\r\n%1\r\n~0\r\n#f\r\n_\r\n");
}

}  // namespace
}  // namespace synod::api
