// The history's JSON-lines format: what a line looks like, round trips, and
// the errors a bad line gets (docs/history.md).
#include <gtest/gtest.h>

#include <cstdint>
#include <limits>
#include <sstream>
#include <string>
#include <utility>

#include "sim/history.h"
#include "sim/history_builder.h"

namespace synod::sim::testing {
namespace {

constexpr uint64_t kTimeMax = std::numeric_limits<uint64_t>::max();

HistoryBuilder every_kind_and_outcome() {
  HistoryBuilder h;
  h.get(1, "k", kAbsentValue, 0, 10);
  h.get(2, "k", "caf\xc3\xa9 \"quoted\"\n\ttab", 5, 15);
  h.get(3, "k", "", 6, 16).unknown();
  h.set(1, "k", "5", 20, 30);
  h.set(2, "", "empty key", 21, 31).fail();
  h.cas(3, "k", "5", "6", true, 40, 50);
  h.cas(1, "k", kAbsentValue, "7", false, 41, 51);
  h.cas(2, "k", "x", "y", false, 42, 52).unknown();
  h.incr(3, "n", std::numeric_limits<int64_t>::min(), std::numeric_limits<int64_t>::min(), 60, 70);
  h.incr(1, "n", 3, 0, 61, kTimeMax).unknown();
  h.incr(std::numeric_limits<uint64_t>::max(), "n", 1, 0, kTimeMax, kTimeMax).fail();
  return h;
}

std::string error_of(std::string_view text) {
  const base::Result<History> history = parse_history(text);
  EXPECT_FALSE(history.ok()) << "accepted: " << text;
  return history.ok() ? std::string() : history.error().message();
}

TEST(HistoryFormat, LineHoldsTheDocumentedFieldsInOrder) {
  HistoryBuilder h;
  h.set(3, "k", "x", 100, 200);
  h.cas(4, "k", kAbsentValue, "y", true, 150, 250);
  h.get(5, "k", "x", 300, 400).unknown();
  h.incr(6, "n", -2, 0, 500, 600).fail();
  EXPECT_EQ(*to_json_line(h.history()[0]),
            R"({"id":1,"client":3,"kind":"set","key":"k","value":"x","outcome":"ok",)"
            R"("call_ns":100,"return_ns":200})");
  EXPECT_EQ(*to_json_line(h.history()[1]),
            R"({"id":2,"client":4,"kind":"cas","key":"k","expected":null,"value":"y",)"
            R"("outcome":"ok","swapped":true,"call_ns":150,"return_ns":250})");
  EXPECT_EQ(*to_json_line(h.history()[2]),
            R"({"id":3,"client":5,"kind":"get","key":"k","outcome":"unknown",)"
            R"("call_ns":300,"return_ns":400})");
  EXPECT_EQ(*to_json_line(h.history()[3]),
            R"({"id":4,"client":6,"kind":"incr","key":"n","delta":-2,"outcome":"fail",)"
            R"("call_ns":500,"return_ns":600})");
}

TEST(HistoryFormat, RoundTripKeepsEveryField) {
  const History history = every_kind_and_outcome().history();
  std::stringstream stream;
  ASSERT_TRUE(write_history(history, stream).ok());
  const std::string text = stream.str();

  const base::Result<History> from_stream = read_history(stream);
  ASSERT_TRUE(from_stream.ok()) << from_stream.error().to_string();
  EXPECT_EQ(*from_stream, history);
  const base::Result<History> from_text = parse_history(text);
  ASSERT_TRUE(from_text.ok()) << from_text.error().to_string();
  EXPECT_EQ(*from_text, history);
}

TEST(HistoryFormat, BlankLinesAndCarriageReturnsAreAccepted) {
  const std::string line = *to_json_line(every_kind_and_outcome().history()[0]);
  const base::Result<History> history = parse_history("\n" + line + "\r\n  \n");
  ASSERT_TRUE(history.ok()) << history.error().to_string();
  EXPECT_EQ(history->size(), 1u);
}

TEST(HistoryFormat, BadLinesAreRefusedWithTheirNumberAndReason) {
  const std::string good = R"({"id":1,"client":1,"kind":"set","key":"k","value":"v","outcome":"ok","call_ns":1,"return_ns":2})";
  const std::pair<std::string, std::string> cases[] = {
      {"not json", "not valid JSON"},
      {"[[1]]", "not a flat JSON object"},
      {"[1,2]", "not a JSON object"},
      {"\"a string\"", "not a JSON object"},
      {R"({"id":2,"client":1,"kind":"get","key":"k","outcome":"ok","call_ns":1,"return_ns":2})",
       "missing field \"read\""},
      {R"({"id":2,"client":1,"kind":"get","key":"k","read":null,"outcome":"ok","call_ns":1})",
       "missing field \"return_ns\""},
      {R"({"id":-2,"client":1,"kind":"get","key":"k","read":null,"outcome":"ok","call_ns":1,"return_ns":2})",
       "field \"id\": expected an unsigned integer"},
      {R"({"id":2.5,"client":1,"kind":"get","key":"k","read":null,"outcome":"ok","call_ns":1,"return_ns":2})",
       "field \"id\": expected an unsigned integer"},
      {R"({"id":2,"client":"1","kind":"get","key":"k","read":null,"outcome":"ok","call_ns":1,"return_ns":2})",
       "field \"client\": expected an unsigned integer"},
      {R"({"id":2,"client":1,"kind":"put","key":"k","outcome":"ok","call_ns":1,"return_ns":2})",
       "field \"kind\": expected one of get, set, cas, incr"},
      {R"({"id":2,"client":1,"kind":"get","key":"k","read":null,"outcome":"timeout","call_ns":1,"return_ns":2})",
       "field \"outcome\": expected one of ok, fail, unknown"},
      {R"({"id":2,"client":1,"kind":"get","key":7,"read":null,"outcome":"ok","call_ns":1,"return_ns":2})",
       "field \"key\": expected a string"},
      {R"({"id":2,"client":1,"kind":"get","key":"k","read":null,"outcome":"ok","call_ns":3,"return_ns":2})",
       "returns before it is called"},
      {R"({"id":2,"client":1,"kind":"get","key":"k","read":null,"outcome":"ok","call_ns":1,"return_ns":2,"extra":1})",
       "unexpected field \"extra\""},
      {R"({"id":2,"client":1,"kind":"get","key":"k","read":"v","outcome":"unknown","call_ns":1,"return_ns":2})",
       "unexpected field \"read\" for get with outcome unknown"},
      {R"({"id":2,"client":1,"kind":"set","key":"k","value":"v","delta":1,"outcome":"ok","call_ns":1,"return_ns":2})",
       "unexpected field \"delta\""},
      {R"({"id":2,"client":1,"kind":"cas","key":"k","expected":"a","value":"b","outcome":"ok","swapped":1,"call_ns":1,"return_ns":2})",
       "field \"swapped\": expected true or false"},
      {R"({"id":2,"client":1,"kind":"incr","key":"k","delta":9223372036854775808,"outcome":"fail","call_ns":1,"return_ns":2})",
       "field \"delta\": out of the 64-bit signed range"},
      {R"({"id":2,"client":1,"kind":"incr","key":"k","delta":1,"outcome":"ok","result":"2","call_ns":1,"return_ns":2})",
       "field \"result\": expected an integer"},
      {R"({"id":1,"client":1,"kind":"get","key":"k","read":null,"outcome":"ok","call_ns":1,"return_ns":2})",
       "id 1 is already used on line 1"},
      {R"({"id":2,"client":1,"kind":"get","key":")" + std::string(kHistoryKeyBytesMax + 1, 'k') +
           R"(","read":null,"outcome":"ok","call_ns":1,"return_ns":2})",
       "field \"key\": longer than 65536 bytes"},
      {R"({"id":2,"client":1,"kind":"set","key":"k","value":")" + std::string(kHistoryValueBytesMax + 1, 'v') +
           R"(","outcome":"ok","call_ns":1,"return_ns":2})",
       "field \"value\": longer than 131072 bytes"},
      {R"({"id":2,"client":1,"kind":"set","key":"k","value":")" + std::string("\xff") +
           R"(","outcome":"ok","call_ns":1,"return_ns":2})",
       "not valid JSON"},
  };
  for (const auto& [line, reason] : cases) {
    const std::string error = error_of(good + "\n" + line + "\n");
    EXPECT_EQ(error.rfind("line 2: ", 0), 0u) << error;
    EXPECT_NE(error.find(reason), std::string::npos) << "line: " << line << "\nerror: " << error;
  }
}

TEST(HistoryFormat, OverlongLineIsRefusedBeforeItIsRead) {
  const std::string huge = "{\"id\":1,\"key\":\"" + std::string(kHistoryLineBytesMax, 'x') + "\"}\n";
  std::istringstream stream("\n" + huge);
  const base::Result<History> history = read_history(stream);
  ASSERT_FALSE(history.ok());
  EXPECT_EQ(history.error().message(), "line 2: longer than 1048576 bytes");
  EXPECT_EQ(error_of("\n" + huge), "line 2: longer than 1048576 bytes");
}

TEST(HistoryFormat, DeeplyNestedInputIsRefused) {
  EXPECT_NE(error_of(std::string(100000, '[')).find("not a flat JSON object"), std::string::npos);
}

TEST(HistoryFormat, WritingRefusesWhatCannotBeReadBack) {
  HistoryBuilder not_utf8;
  not_utf8.set(1, "k", "\xff\xfe", 0, 1);
  std::ostringstream out;
  const base::Status status = write_history(not_utf8.history(), out);
  ASSERT_FALSE(status.ok());
  EXPECT_NE(status.error().message().find("UTF-8"), std::string::npos) << status.error().message();

  HistoryBuilder get_with_value;
  get_with_value.get(1, "k", "a", 0, 1);
  History history = get_with_value.history();
  history[0].value = "not a get's";
  EXPECT_FALSE(write_history(history, out).ok());

  HistoryBuilder twice;
  twice.set(1, "k", "a", 0, 1);
  history = twice.history();
  history.push_back(history[0]);
  EXPECT_FALSE(write_history(history, out).ok());
}

TEST(HistoryFormat, DescribeIsForAPerson) {
  HistoryBuilder h;
  h.cas(3, "k", "a", "b", true, 1'000'000'200, 1'000'000'900);
  h.incr(4, "n", 2, 0, 5, 10).unknown();
  h.get(5, "k", std::string(100, 'v'), 0, 1);
  EXPECT_EQ(describe(h.history()[0]),
            "#1 client 3 cas(\"k\", \"a\", \"b\") -> swapped [1.000000200s, 1.000000900s] ok");
  EXPECT_EQ(describe(h.history()[1]),
            "#2 client 4 incr(\"n\", +2) [0.000000005s, 0.000000010s] unknown");
  EXPECT_NE(describe(h.history()[2]).find("...(100 bytes)"), std::string::npos);
}

}  // namespace
}  // namespace synod::sim::testing
