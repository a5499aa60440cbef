#include "server/config.h"

#include <gtest/gtest.h>

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
}

TEST(ServeConfigTest, EmptyFileKeepsDefaults) {
  auto c = Parse("");
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->server.host, "127.0.0.1");
  EXPECT_TRUE(c->store.tiers.empty());
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

}  // namespace
}  // namespace cxlkv::serve
