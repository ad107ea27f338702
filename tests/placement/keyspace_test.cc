// Keyspace descriptors and the key -> keyspace -> group routing rule.
#include <gtest/gtest.h>

#include "placement/keyspace.h"
#include "placement/partition.h"

namespace synod::placement {
namespace {

Keyspace keyspace(std::string name, uint32_t partitions, uint64_t first_group) {
  Keyspace k;
  k.name = std::move(name);
  k.partitions = partitions;
  k.first_group = first_group;
  return k;
}

TEST(Keyspace, AKeyBelongsToTheLongestDefinedPrefixBeforeAColonElseDefault) {
  Catalog catalog;
  catalog.put(keyspace("default", 4, 2));
  catalog.put(keyspace("app", 8, 100));
  catalog.put(keyspace("app:users", 16, 200));
  EXPECT_EQ(catalog.keyspace_of("app:users:42")->name, "app:users");
  EXPECT_EQ(catalog.keyspace_of("app:orders:7")->name, "app");
  EXPECT_EQ(catalog.keyspace_of("app:users")->name, "app") << "\"app:users\" is a key of app";
  EXPECT_EQ(catalog.keyspace_of("application:1")->name, "default");
  EXPECT_EQ(catalog.keyspace_of("app")->name, "default") << "no colon, no keyspace";
  EXPECT_EQ(catalog.keyspace_of(":x")->name, "default");
  EXPECT_EQ(catalog.keyspace_of("")->name, "default");
  EXPECT_EQ(catalog.group_of("app:users:42"), 200 + partition_of("app:users:42", 16));
  EXPECT_EQ(catalog.group_of("plain"), 2 + partition_of("plain", 4));
  catalog.erase("app:users");
  EXPECT_EQ(catalog.keyspace_of("app:users:42")->name, "app");
}

TEST(Keyspace, KeysOfAKeyspaceBeingCreatedOrDroppedAreRoutedNowhere) {
  Catalog catalog;
  catalog.put(keyspace("default", 4, 2));
  Keyspace app = keyspace("app", 8, 100);
  app.state = KeyspaceState::kCreating;
  catalog.put(app);
  std::string why;
  EXPECT_EQ(catalog.group_of("app:1", &why), 0u);
  EXPECT_EQ(why, "keyspace 'app' is being created");
  app.state = KeyspaceState::kDropping;
  catalog.put(app);
  EXPECT_EQ(catalog.group_of("app:1", &why), 0u);
  EXPECT_EQ(why, "keyspace 'app' is being dropped");
  app.state = KeyspaceState::kActive;
  catalog.put(app);
  EXPECT_EQ(catalog.group_of("app:1"), 100 + partition_of("app:1", 8));
  EXPECT_NE(catalog.group_of("other:1"), 0u) << "other keys are served throughout";
}

TEST(Keyspace, BadDescriptorsAreRefusedWithTheReason) {
  auto refused = [](Keyspace k, const std::string& words) {
    base::Status s = validate(k);
    ASSERT_FALSE(s.ok()) << k.name;
    EXPECT_NE(s.error().message().find(words), std::string::npos) << s.error().message();
  };
  refused(keyspace("", 4, 0), "a name is");
  refused(keyspace("Upper", 4, 0), "a name is");
  refused(keyspace("a::b", 4, 0), "a name is");
  refused(keyspace("a:", 4, 0), "a name is");
  refused(keyspace(std::string(65, 'a'), 4, 0), "a name is");
  refused(keyspace("p", 3, 0), "power of two");
  refused(keyspace("p", 8192, 0), "power of two");
  Keyspace k = keyspace("r", 4, 0);
  k.replicas = 0;
  refused(k, "replicas");
  k = keyspace("z", 4, 0);
  k.zone_policy = "nearby";
  refused(k, "zone policy");
  k = keyspace("q", 4, 0);
  k.write_quorum = 2;
  refused(k, "eventual");
  k.mode = Mode::kEventual;
  EXPECT_TRUE(validate(k).ok());
  k.read_quorum = 4;
  refused(k, "larger than the replicas");
}

TEST(Keyspace, DescriptorsRoundTripAndDamagedOnesDoNotDecode) {
  Keyspace k = keyspace("profiles", 64, 4242);
  k.mode = Mode::kEventual;
  k.write_quorum = 2;
  k.read_quorum = 2;
  k.merge = "siblings";
  const std::string bytes = encode_keyspace(k);
  auto back = decode_keyspace(bytes);
  ASSERT_TRUE(back.ok()) << back.error().to_string();
  EXPECT_EQ(*back, k);
  for (size_t cut = 0; cut < bytes.size(); ++cut) {
    EXPECT_FALSE(decode_keyspace(bytes.substr(0, cut)).ok()) << "cut at " << cut;
  }
  EXPECT_FALSE(decode_keyspace(bytes + "x").ok());
  // Format 1 had no state byte: read as active.
  std::string v1 = bytes.substr(0, bytes.size() - 1);
  v1[0] = 1;
  auto old = decode_keyspace(v1);
  ASSERT_TRUE(old.ok()) << old.error().to_string();
  EXPECT_EQ(old->state, KeyspaceState::kActive);
  std::string bad_state = bytes;
  bad_state.back() = 9;
  EXPECT_FALSE(decode_keyspace(bad_state).ok());
}

TEST(Keyspace, OptionsAsAPersonWritesThemBecomeADescriptorOrAClearError) {
  auto made = keyspace_from_options(
      "app", {{"MODE", "strong"}, {"replicas", "2"}, {"Partitions", "64"}, {"zone-policy", "any"}});
  ASSERT_TRUE(made.ok()) << made.error().to_string();
  EXPECT_EQ(made->replicas, 2u);
  EXPECT_EQ(made->partitions, 64u);
  EXPECT_EQ(made->zone_policy, "any");
  EXPECT_EQ(made->state, KeyspaceState::kActive) << "the meta group sets the state at creation";

  auto error_of = [](std::vector<std::pair<std::string, std::string>> options) {
    auto made = keyspace_from_options("app", options);
    return made.ok() ? std::string("accepted") : made.error().message();
  };
  EXPECT_NE(error_of({{"replicas", "three"}}).find("must be a number"), std::string::npos);
  EXPECT_NE(error_of({{"replicas", "99999999999"}}).find("must be a number"), std::string::npos);
  EXPECT_NE(error_of({{"partitions", "48"}}).find("power of two"), std::string::npos);
  EXPECT_NE(error_of({{"mode", "fast"}}).find("strong or eventual"), std::string::npos);
  EXPECT_NE(error_of({{"shards", "4"}}).find("unknown keyspace option \"shards\""),
            std::string::npos);
  EXPECT_NE(error_of({{"w", "2"}}).find("belong to eventual"), std::string::npos);
  EXPECT_FALSE(keyspace_from_options("App", {}).ok()) << "names are lower case";
}

}  // namespace
}  // namespace synod::placement
