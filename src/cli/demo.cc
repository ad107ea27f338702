// `synod demo`: three (or five) real Raft nodes, the code production runs,
// in one process over a simulated network in simulated time. It walks through
// what a user should believe about a strong keyspace and shows each claim
// happen: election, replication, a leader crash, recovery from disk,
// leadership transfer, a minority partition that refuses writes, and a
// linearizable read.
#include <cstdio>
#include <functional>
#include <map>
#include <string>

#include "cli/commands.h"
#include "sim/raft_cluster.h"

namespace synod::cli {
namespace {

using sim::RaftCluster;
using namespace synod::raft;

class Demo {
 public:
  explicit Demo(const DemoOptions& options) : cluster_(ids(options.nodes), [&](Config& c) {
    c.random_seed = options.seed * 1000003 + c.id.value();
  }) {}

  int run() {
    say("Synod demo: the Raft core of a strong keyspace, in one process.");
    say("The networked server (redis-cli on port 7379) arrives with the server issue; until");
    say("then this runs %zu real Raft nodes over a simulated network in simulated time.",
        cluster_.ids().size());
    say("");

    const uint64_t first = wait_for_leader("boot: nodes start with no leader");
    set(first, "balance:alice", "100");
    set(first, "balance:bob", "50");
    const uint64_t follower = other_than(first);
    set(follower, "balance:carol", "75", "(sent to follower %llu, forwarded to the leader)",
        static_cast<unsigned long long>(follower));

    step("crash the leader, node %llu", ull(first));
    cluster_.crash(first);
    const uint64_t second = wait_for_leader("the others notice the silence and elect");
    set(second, "balance:alice", "90");

    step("node %llu restarts from what its disk holds", ull(first));
    cluster_.restart(first);
    run_until([&] { return applied(first) == applied(second); }, 200);
    show("node %llu caught up: applied index %llu, the same as the leader", ull(first),
         ull(applied(first)));

    const uint64_t target = other_than(second);
    step("hand leadership from node %llu to node %llu", ull(second), ull(target));
    const uint64_t before = ticks_;
    cluster_.node(second).transfer_leader(NodeId{target});
    run_until([&] { return cluster_.leader() == target; }, 100);
    show("node %llu leads term %llu after %llu tick(s)", ull(cluster_.leader()),
         ull(cluster_.raft(target).term().value()), ull(ticks_ - before));

    const uint64_t isolated = cluster_.leader();
    step("cut node %llu (the leader) off from the rest", ull(isolated));
    cluster_.isolate(isolated);
    (void)cluster_.node(isolated).propose(Bytes("SET balance:bob 0"));
    const uint64_t third =
        wait_for_leader("the majority side elects a new leader", [&](uint64_t id) { return id != isolated; });
    set(third, "balance:bob", "40");
    show("the write on the minority side (balance:bob 0) never commits: an acknowledged write");
    show("needs a majority, so the cut-off leader cannot acknowledge anything");
    step("heal the network");
    cluster_.heal();
    run_until([&] { return applied(isolated) == applied(third); }, 200);
    show("node %llu steps down (role: %s) and its log is repaired to match the leader's",
         ull(isolated), std::string(role_name(cluster_.raft(isolated).role())).c_str());

    const uint64_t reader = other_than(cluster_.leader());
    step("a linearizable read on follower %llu (ReadIndex: the leader confirms it still leads)",
         ull(reader));
    cluster_.node(reader).read_index(Bytes("read-1"));
    run_until([&] { return !cluster_.peer(reader).read_states.empty(); }, 50);
    if (cluster_.peer(reader).read_states.empty()) {
      show("no read state: the read would time out and the client would retry");
    } else {
      const LogIndex at = cluster_.peer(reader).read_states.back().index;
      run_until([&] { return LogIndex{applied(reader)} >= at; }, 50);
      show("read at index %llu: balance:bob = %s", ull(at.value()), state(reader)["balance:bob"].c_str());
    }

    say("");
    bool same = true;
    for (uint64_t id : cluster_.ids()) same &= state(id) == state(cluster_.leader());
    say("every node applied the same commands in the same order: %s", same ? "yes" : "NO");
    for (uint64_t id : cluster_.ids()) {
      std::string line;
      for (const auto& [k, v] : state(id)) line += " " + k + "=" + v;
      say("  node %llu (%s, applied %llu):%s", ull(id),
          std::string(role_name(cluster_.raft(id).role())).c_str(), ull(applied(id)), line.c_str());
    }
    say("");
    say("Run `make test` to see the same code checked under hundreds of randomized fault seeds.");
    return same ? 0 : 1;
  }

 private:
  static std::vector<uint64_t> ids(int n) {
    std::vector<uint64_t> out;
    for (int i = 1; i <= n; ++i) out.push_back(static_cast<uint64_t>(i));
    return out;
  }
  static unsigned long long ull(uint64_t v) { return static_cast<unsigned long long>(v); }

  template <class... Args>
  void say(const char* format, Args... args) {
    std::printf(format, args...);
    std::printf("\n");
  }
  template <class... Args>
  void step(const char* format, Args... args) {
    std::printf("[tick %4llu] ", ull(ticks_));
    std::printf(format, args...);
    std::printf("\n");
  }
  template <class... Args>
  void show(const char* format, Args... args) {
    std::printf("             ");
    std::printf(format, args...);
    std::printf("\n");
  }

  void tick() {
    cluster_.tick_all();
    cluster_.deliver_all();
    ++ticks_;
  }

  void run_until(const std::function<bool()>& done, int max_ticks) {
    cluster_.deliver_all();
    for (int i = 0; i < max_ticks && !done(); ++i) tick();
  }

  uint64_t wait_for_leader(const char* what,
                           const std::function<bool(uint64_t)>& acceptable = [](uint64_t) { return true; }) {
    step("%s", what);
    run_until([&] { return cluster_.leader() != 0 && acceptable(cluster_.leader()); }, 500);
    const uint64_t lead = cluster_.leader();
    show("node %llu won the election for term %llu", ull(lead), ull(cluster_.raft(lead).term().value()));
    return lead;
  }

  template <class... Args>
  void set(uint64_t via, const std::string& key, const std::string& value, const char* note = "",
           Args... args) {
    const std::string command = "SET " + key + " " + value;
    (void)cluster_.node(via).propose(Bytes(command));
    const uint64_t leader = cluster_.leader();
    const uint64_t target = applied(leader) + 1;
    // Acknowledged once the leader applies it; followers learn the new commit
    // index with the next message, so give them a heartbeat to catch up.
    run_until([&] { return applied(leader) >= target; }, 50);
    run_until([&] { return count_applied(target) == up_nodes(); }, 2);
    std::printf("[tick %4llu] %s -> committed on %zu/%zu nodes ", ull(ticks_), command.c_str(),
                count_applied(target), cluster_.ids().size());
    std::printf(note, args...);
    std::printf("\n");
  }

  uint64_t applied(uint64_t id) { return cluster_.peer(id).applied_index.value(); }
  size_t count_applied(uint64_t index) {
    size_t n = 0;
    for (uint64_t id : cluster_.ids()) n += !cluster_.peer(id).down && applied(id) >= index;
    return n;
  }
  size_t up_nodes() {
    size_t n = 0;
    for (uint64_t id : cluster_.ids()) n += !cluster_.peer(id).down;
    return n;
  }
  uint64_t other_than(uint64_t id) {
    for (uint64_t other : cluster_.ids()) {
      if (other != id && !cluster_.peer(other).down) return other;
    }
    return id;
  }

  std::map<std::string, std::string> state(uint64_t id) {
    std::map<std::string, std::string> kv;
    for (const Entry& e : cluster_.peer(id).applied) {
      const std::string command = e.data.str();
      const size_t key_at = command.find(' ');
      const size_t value_at = command.find(' ', key_at + 1);
      if (key_at == std::string::npos || value_at == std::string::npos) continue;
      kv[command.substr(key_at + 1, value_at - key_at - 1)] = command.substr(value_at + 1);
    }
    return kv;
  }

  RaftCluster cluster_;
  uint64_t ticks_ = 0;
};

}  // namespace

int run_demo(const DemoOptions& options) { return Demo(options).run(); }

}  // namespace synod::cli
