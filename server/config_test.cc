#include "server/config.h"

#include <gtest/gtest.h>

#include "options/store_flags.h"
#include "options/store_schema.h"

namespace cxlkv::serve {
namespace {

Result<ServeConfig> Parse(std::string_view text) {
  return ParseServeConfig(text, "test.toml", ServeConfig{});
}

void ExpectError(std::string_view text, std::string_view words) {
  auto c = Parse(text);
  ASSERT_FALSE(c.ok()) << text;
  EXPECT_TRUE(c.status().IsInvalidArgument()) << c.status().ToString();
  EXPECT_NE(c.status().message().find(words), std::string::npos) << c.status().ToString();
  EXPECT_NE(c.status().message().find("test.toml"), std::string::npos) << c.status().ToString();
}

TEST(ServeConfigTest, FullFile) {
  auto c = Parse(R"(
[server]
host = "0.0.0.0"
port = 6000
unix_socket = "/tmp/x.sock"
threads = 4
max_payload = "64M"
metrics_port = 9100

[store]
slab_size = "8M"
chunk_sizes = ["2M", 33554432]
ttl_seconds = 60

[[tier]]
name = "dram"
source = "dram"
capacity = "1G"
eviction = "s3fifo"
high_watermark = 0.9
low_watermark = 0.8

[[tier]]
name = "cxl"
source = "numa:1"
capacity = 1073741824
promote_after_hits = 3

[spill]
path = "/var/tmp/spill"
capacity = "8G"
queue_depth = 16
read_bytes_in_flight = "8M"
write_unit = "16K"
)");
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(c->server.host, "0.0.0.0");
  EXPECT_EQ(c->server.port, 6000);
  EXPECT_EQ(c->server.unix_path, "/tmp/x.sock");
  EXPECT_EQ(c->server.threads, 4u);
  EXPECT_EQ(c->server.max_payload, std::size_t{64} << 20);
  EXPECT_EQ(c->server.metrics_port, 9100);
  EXPECT_EQ(c->store.slab_size, std::size_t{8} << 20);
  EXPECT_EQ(c->store.chunk_sizes, (std::vector<std::size_t>{2u << 20, 32u << 20}));
  EXPECT_EQ(c->store.ttl.count(), 60);
  ASSERT_EQ(c->store.tiers.size(), 2u);
  EXPECT_EQ(c->store.tiers[0].eviction, "s3fifo");
  EXPECT_EQ(c->store.tiers[0].high_watermark.value_or(0), 0.9);
  EXPECT_EQ(c->store.tiers[1].source_spec, "numa:1");
  EXPECT_EQ(c->store.tiers[1].capacity, std::size_t{1} << 30);
  EXPECT_EQ(c->store.tiers[1].promote_after_hits.value_or(0), 3);
  EXPECT_EQ(c->store.spill.path, "/var/tmp/spill");
  EXPECT_EQ(c->store.spill.capacity, std::uint64_t{8} << 30);
  EXPECT_EQ(c->store.spill.queue_depth, 16u);
  EXPECT_EQ(c->store.spill.read_bytes_in_flight, std::uint64_t{8} << 20);
  EXPECT_EQ(c->store.spill.write_unit, 16u << 10);
}

TEST(ServeConfigTest, EmptyFileKeepsDefaults) {
  auto c = Parse("");
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->server.host, "127.0.0.1");
  EXPECT_TRUE(c->store.tiers.empty());
  // The spill log's defaults as docs/benchmarks.md measured them; 0 is still a valid cap (none).
  EXPECT_EQ(c->store.spill.read_bytes_in_flight, std::uint64_t{16} << 20);
  EXPECT_EQ(c->store.spill.write_unit, 64u << 10);
  auto none = Parse("[spill]\npath = \"/var/tmp/spill\"\nread_bytes_in_flight = 0\n");
  ASSERT_TRUE(none.ok()) << none.status().ToString();
  EXPECT_EQ(none->store.spill.read_bytes_in_flight, 0u);
}

TEST(ServeConfigTest, ClearErrors) {
  ExpectError("[server]\nprot = 1\n", "unknown key server.prot");
  ExpectError("[servers]\n", "unknown key servers");
  ExpectError("[server]\nport = 70000\n", "server.port is 70000");
  ExpectError("[server]\nport = \"x\"\n", "server.port must be an integer");
  ExpectError("[[tier]]\nsource = \"dram\"\ncapacity = \"lots\"\n", "tier[0].capacity");
  ExpectError("[[tier]]\ncapacity = \"1G\"\n", "tier[0].source is required");
  ExpectError("[[tier]]\nsource = \"dram\"\ncapacity = \"1G\"\nhigh_watermark = 2\n",
              "tier[0].high_watermark must be 0 to 1");
  ExpectError("tier = 3\n", "[[tier]]");
  ExpectError("[server\n", "test.toml");  // a syntax error, with its position
  ExpectError("[spill]\ncapacity = \"1G\"\n", "spill.path is required");
}

TEST(ServeConfigTest, Budgets) {
  auto c = Parse(R"(
[server]
request_timeout_ms = 5000
reply_timeout_ms = 0
idle_timeout_ms = 600000
min_transfer_rate = "1M"
max_reserved_bytes = "2G"
max_reply_bytes = 1048576
max_connections = 64
max_connections_per_peer = 8
max_list_bytes = "64K"
log_lines_per_second = 10
)");
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  const ServerOptions& s = c->server;
  EXPECT_EQ(s.request_timeout, std::chrono::milliseconds(5000));
  EXPECT_EQ(s.reply_timeout, std::chrono::milliseconds(0));
  EXPECT_EQ(s.idle_timeout, std::chrono::milliseconds(600000));
  EXPECT_EQ(s.min_transfer_rate, std::size_t{1} << 20);
  EXPECT_EQ(s.max_reserved_bytes, std::size_t{2} << 30);
  EXPECT_EQ(s.max_reply_bytes, std::size_t{1} << 20);
  EXPECT_EQ(s.max_connections, 64u);
  EXPECT_EQ(s.max_connections_per_peer, 8u);
  EXPECT_EQ(s.max_list_bytes, std::size_t{64} << 10);
  EXPECT_EQ(s.log_lines_per_second, 10.0);
  // Defaults stay when the file says nothing.
  auto d = Parse("[server]\nport = 1\n");
  ASSERT_TRUE(d.ok());
  EXPECT_EQ(d->server.request_timeout, std::chrono::milliseconds(30000));
  EXPECT_EQ(d->server.max_connections, 1024u);
  ExpectError("[server]\nmax_connections = 0\n", "server.max_connections");
  ExpectError("[server]\nrequest_timeout_ms = -1\n", "server.request_timeout_ms");
  ExpectError("[server]\nmax_reserved_bytes = \"lots\"\n", "server.max_reserved_bytes");
}

// The same options through each route that parses them in C++: the TOML file, the flags'
// syntax, and the flat keys the Python routes hand over (python/tests covers the bindings).
TEST(ServeConfigTest, EveryRouteGivesTheSameOptions) {
  auto toml = Parse(R"(
[store]
slab_size = "1M"
chunk_sizes = ["2M", "4M"]
ttl_seconds = 30
copy_threads = 3

[[tier]]
source = "dram"
capacity = "64M"
name = "dram"
eviction = "s3fifo"

[[tier]]
source = "file:/tmp/pool"
capacity = "128M"
name = "file"
promote_after_hits = 5
durability = "persist-on-put"
high_watermark = 0.9

[spill]
path = "/tmp/spill"
capacity = "1G"
queue_depth = 8
promote_after_hits = 63
)");
  ASSERT_TRUE(toml.ok()) << toml.status().ToString();

  StoreOptions flags;
  for (const char* item :
       {"slab_size=1M", "chunk_sizes=2M,4M", "ttl_seconds=30", "copy_threads=3"}) {
    ASSERT_TRUE(options::ApplyStoreFlag(item, flags).ok()) << item;
  }
  for (const char* t :
       {"dram,64M,s3fifo,name=dram",
        "file:/tmp/pool,128M,persist-on-put,name=file,promote_after_hits=5,high_watermark=0.9"}) {
    TierOptions tier;
    const Status s = options::ApplyTierFlag(t, tier);
    ASSERT_TRUE(s.ok()) << s.ToString();
    flags.tiers.push_back(std::move(tier));
  }
  ASSERT_TRUE(
      options::ApplySpillFlag("/tmp/spill,1G,queue_depth=8,promote_after_hits=63", flags).ok());

  StoreOptions flat;  // as cxlkv.open's keyword arguments arrive, strings from LMCache's YAML
  const std::vector<options::NamedValue> kwargs = {
      {"slab_size", {std::int64_t{1} << 20}, "slab_size"},
      {"chunk_sizes", {std::string("2M,4M")}, "chunk_sizes"},
      {"ttl_seconds", {std::string("30")}, "ttl_seconds"},
      {"copy_threads", {std::int64_t{3}}, "copy_threads"},
      {"spill_path", {std::string("/tmp/spill")}, "spill_path"},
      {"spill_capacity", {std::string("1G")}, "spill_capacity"},
      {"spill_queue_depth", {std::int64_t{8}}, "spill_queue_depth"},
      {"spill_promote_after_hits", {std::int64_t{63}}, "spill_promote_after_hits"}};
  ASSERT_TRUE(options::ApplyFlat(kwargs, flat).ok());
  // Tiers as Python dicts arrive: typed values.
  const std::vector<std::vector<options::NamedValue>> dicts = {
      {{"source", {std::string("dram")}, "source"},
       {"capacity", {std::string("64M")}, "capacity"},
       {"name", {std::string("dram")}, "name"},
       {"eviction", {std::string("s3fifo")}, "eviction"}},
      {{"source", {std::string("file:/tmp/pool")}, "source"},
       {"capacity", {std::int64_t{128} << 20}, "capacity"},
       {"name", {std::string("file")}, "name"},
       {"promote_after_hits", {std::int64_t{5}}, "promote_after_hits"},
       {"durability", {std::string("persist-on-put")}, "durability"},
       {"high_watermark", {0.9}, "high_watermark"}}};
  for (const std::vector<options::NamedValue>& dict : dicts) {
    TierOptions tier;
    ASSERT_TRUE(options::Apply(options::TierSchema(), dict, "", tier).ok());
    flat.tiers.push_back(std::move(tier));
  }

  const std::string want = options::DescribeStoreOptions(toml->store);
  EXPECT_EQ(options::DescribeStoreOptions(flags), want);
  EXPECT_EQ(options::DescribeStoreOptions(flat), want);
  EXPECT_NE(want.find("promote_after_hits = 5"), std::string::npos) << want;
  // The description reads back to the same options.
  auto again = Parse(DescribeServeConfig(*toml));
  ASSERT_TRUE(again.ok()) << again.status().ToString();
  EXPECT_EQ(DescribeServeConfig(*again), DescribeServeConfig(*toml));
}

// promote_after_hits = 64 is past what the store keeps count of (63): every route refuses it,
// naming the key. (Before the schema, the file took up to 255 and the store refused it later.)
TEST(ServeConfigTest, EveryRouteRefusesPromoteAfterHits64ByName) {
  ExpectError("[[tier]]\nsource = \"dram\"\ncapacity = \"1G\"\npromote_after_hits = 64\n",
              "tier[0].promote_after_hits is 64; it must be 0 to 63");
  ExpectError("[spill]\npath = \"/tmp/s\"\npromote_after_hits = 64\n",
              "spill.promote_after_hits is 64; it must be 0 to 63");
  TierOptions tier;
  const Status refused = options::ApplyTierFlag("dram,1G,promote_after_hits=64", tier);
  EXPECT_EQ(refused.message(),
            "--tier dram,1G,promote_after_hits=64: promote_after_hits is 64; it must be 0 to 63");
  StoreOptions o;
  const Status spill = options::ApplySpillFlag("/tmp/s,1G,promote_after_hits=64", o);
  EXPECT_NE(spill.message().find("promote_after_hits is 64; it must be 0 to 63"), std::string::npos)
      << spill.ToString();
  const options::NamedValue kwarg{
      "spill_promote_after_hits", {std::int64_t{64}}, "spill_promote_after_hits"};
  EXPECT_EQ(options::ApplyFlat(std::span(&kwarg, 1), o).message(),
            "spill_promote_after_hits is 64; it must be 0 to 63");
}

TEST(ServeConfigTest, EveryRouteRefusesUnknownKeysByName) {
  ExpectError("[[tier]]\nsource = \"dram\"\ncapacity = \"1G\"\npersist = \"background\"\n",
              "unknown key tier[0].persist (known: source, capacity, name,");
  ExpectError("[store]\nttl = 5\n", "unknown key store.ttl (known: slab_size,");
  ExpectError("[spill]\npath = \"/tmp/s\"\nsize = \"1G\"\n", "unknown key spill.size");
  TierOptions tier;
  const Status unknown = options::ApplyTierFlag("dram,1G,evicton=lru", tier);
  EXPECT_NE(unknown.message().find("unknown key --tier dram,1G,evicton=lru: evicton"),
            std::string::npos)
      << unknown.ToString();
  StoreOptions o;
  EXPECT_NE(options::ApplyStoreFlag("tll_seconds=5", o)
                .message()
                .find("unknown key --store tll_seconds=5: tll_seconds"),
            std::string::npos);
  const options::NamedValue kwarg{"spill_pth", {std::string("/x")}, "spill_pth"};
  EXPECT_EQ(options::ApplyFlat(std::span(&kwarg, 1), o).message().find("unknown key spill_pth"),
            0u);
}

TEST(ServeConfigTest, DurabilityIsTheTiersKeyAndItsValuesAreChecked) {
  auto c =
      Parse("[[tier]]\nsource = \"file:/tmp/p\"\ncapacity = \"1G\"\ndurability = \"background\"\n");
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(c->store.tiers[0].durability, "background");
  ExpectError(
      "[[tier]]\nsource = \"dram\"\ncapacity = \"1G\"\ndurability = \"forever\"\n",
      "tier[0].durability is 'forever'; it must be one of volatile,persist-on-put,background");
}

}  // namespace
}  // namespace cxlkv::serve
