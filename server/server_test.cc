// The server end to end from C++: a PUT received into a reserved slot is visible only once
// complete, and bad input closes one connection while the others and the stored chunks carry
// on. (The protocol client tests in tests/serve/ cover the commands from Python.)
#include "server/server.h"

#include <gtest/gtest.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstring>
#include <vector>

#include "server/protocol.h"
#include "tests/test_util.h"

namespace cxlkv::serve {
namespace {

std::unique_ptr<Store> SmallStore() {
  StoreOptions o;
  TierOptions t;
  t.name = "dram";
  t.source = MemorySource::Dram(DramOptions{HugePages::kNone, false});
  t.capacity = std::size_t{16} << 20;
  o.tiers.push_back(std::move(t));
  o.slab_size = std::size_t{1} << 20;
  o.background_thread = false;
  auto s = Store::Open(std::move(o));
  EXPECT_TRUE(s.ok()) << s.status().ToString();
  return s.ok() ? std::move(s).value() : nullptr;
}

UniqueFd Connect(int port) {
  UniqueFd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<std::uint16_t>(port));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  EXPECT_EQ(::connect(fd.get(), reinterpret_cast<sockaddr*>(&a), sizeof(a)), 0);
  return fd;
}

void SendAll(int fd, const void* p, std::size_t n) {
  const char* c = static_cast<const char*>(p);
  while (n > 0) {
    const ssize_t k = ::send(fd, c, n, MSG_NOSIGNAL);
    ASSERT_GT(k, 0);
    c += k;
    n -= static_cast<std::size_t>(k);
  }
}

// Reads exactly n bytes; false on EOF.
bool RecvAll(int fd, void* p, std::size_t n) {
  char* c = static_cast<char*>(p);
  while (n > 0) {
    const ssize_t k = ::recv(fd, c, n, 0);
    if (k <= 0) return false;
    c += k;
    n -= static_cast<std::size_t>(k);
  }
  return true;
}

void SendHeader(int fd, Command c, std::int32_t length, const std::string& key) {
  Request r;
  r.command = c;
  r.length = length;
  // KV_2LTD bf16 [2, 4, 8, N]: the tensor is `length` bytes when length is a multiple of 128.
  r.layout = {1, 3, {2, 4, 8, length / 128}};
  r.key = key;
  auto h = EncodeRequest(r);
  ASSERT_TRUE(h.ok());
  SendAll(fd, h->data(), h->size());
}

std::int32_t Exist(int fd, const std::string& key) {
  SendHeader(fd, Command::kExist, 0, key);
  std::int32_t reply[9];
  if (!RecvAll(fd, reply, sizeof(reply))) return -1;
  return reply[0];
}

TEST(ServerTest, PartialPutIsNeverVisibleAndOthersCarryOn) {
  auto store = SmallStore();
  ASSERT_NE(store, nullptr);
  ServerOptions o;
  o.quiet = true;
  auto server = Server::Start(*store, o);
  ASSERT_TRUE(server.ok()) << server.status().ToString();
  const int port = (*server)->port();
  UniqueFd good = Connect(port);
  std::vector<std::byte> chunk(1 << 20);
  testing::FillPattern(chunk.data(), chunk.size(), 7);
  SendHeader(good.get(), Command::kPut, static_cast<std::int32_t>(chunk.size()), "whole");
  SendAll(good.get(), chunk.data(), chunk.size());
  ASSERT_EQ(Exist(good.get(), "whole"), 200);  // replies follow requests in order

  {
    UniqueFd cut = Connect(port);
    SendHeader(cut.get(), Command::kPut, static_cast<std::int32_t>(chunk.size()), "half");
    SendAll(cut.get(), chunk.data(), chunk.size() / 2);
    // Not visible while the payload is incomplete.
    EXPECT_EQ(Exist(good.get(), "half"), 400);
  }  // closed mid-payload
  // The server notices the close, aborts the reservation and counts it.
  for (int i = 0; i < 2000 && (*server)->metrics().connections_closed_bad_input.load() == 0; ++i) {
    ::usleep(1000);
  }
  EXPECT_EQ((*server)->metrics().connections_closed_bad_input.load(), 1u);
  EXPECT_EQ(Exist(good.get(), "half"), 400);
  EXPECT_FALSE(store->Contains("half"));
  EXPECT_EQ(store->Stats().index_entries, 1u);

  {
    UniqueFd bad = Connect(port);
    SendHeader(bad.get(), static_cast<Command>(9), 0, "x");
    char byte;
    EXPECT_EQ(::recv(bad.get(), &byte, 1, 0), 0);  // closed by the server, no reply
  }
  // The good connection and its chunk are untouched.
  SendHeader(good.get(), Command::kGet, 0, "whole");
  std::int32_t reply[9];
  ASSERT_TRUE(RecvAll(good.get(), reply, sizeof(reply)));
  EXPECT_EQ(reply[0], 200);
  ASSERT_EQ(reply[1], static_cast<std::int32_t>(chunk.size()));
  EXPECT_EQ(reply[2], 1);
  EXPECT_EQ(reply[3], 3);
  EXPECT_EQ(reply[4], 2);  // shape [2, 4, 8, 8192], then location 0 last
  EXPECT_EQ(reply[7], (1 << 20) / 128);
  EXPECT_EQ(reply[8], 0);
  std::vector<std::byte> got(chunk.size());
  ASSERT_TRUE(RecvAll(good.get(), got.data(), got.size()));
  EXPECT_EQ(testing::FirstPatternMismatch(got.data(), got.size(), 7), -1);
  EXPECT_EQ((*server)->metrics().connections_closed_bad_input.load(), 2u);
  const std::string text = (*server)->metrics().RenderPrometheus(*store);
  EXPECT_NE(text.find("cxlkv_put_total{result=\"stored\"} 1\n"), std::string::npos) << text;
  EXPECT_NE(text.find("cxlkv_tier_chunks{tier=\"dram\"} 1\n"), std::string::npos) << text;
}

TEST(ServerTest, AChunkStoredWithoutALayoutGoesOutAsBytes) {
  auto store = SmallStore();
  ASSERT_NE(store, nullptr);
  std::vector<std::byte> chunk(5000);
  testing::FillPattern(chunk.data(), chunk.size(), 3);
  ASSERT_TRUE(store->Put("from-the-library", chunk).ok());
  ServerOptions o;
  o.quiet = true;
  o.host = "";
  testing::TempDir dir;
  o.unix_path = dir.File("lm.sock");
  auto server = Server::Start(*store, o);
  ASSERT_TRUE(server.ok()) << server.status().ToString();
  EXPECT_EQ((*server)->port(), -1);  // no TCP listener when the host is empty
  UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_un a{};
  a.sun_family = AF_UNIX;
  std::strncpy(a.sun_path, o.unix_path.c_str(), sizeof(a.sun_path) - 1);
  ASSERT_EQ(::connect(fd.get(), reinterpret_cast<sockaddr*>(&a), sizeof(a)), 0);
  SendHeader(fd.get(), Command::kGet, 0, "from-the-library");
  std::int32_t reply[9];
  ASSERT_TRUE(RecvAll(fd.get(), reply, sizeof(reply)));
  // BINARY_BUFFER, dtype None, [size, 0, 0, 0], location 0: how LMCache describes bytes.
  const std::int32_t want[9] = {200, 5000, 5, 0, 5000, 0, 0, 0, 0};
  for (int i = 0; i < 9; ++i) EXPECT_EQ(reply[i], want[i]) << i;
  std::vector<std::byte> got(chunk.size());
  ASSERT_TRUE(RecvAll(fd.get(), got.data(), got.size()));
  EXPECT_EQ(testing::FirstPatternMismatch(got.data(), got.size(), 3), -1);
  (*server)->Stop();
  EXPECT_NE(::access(o.unix_path.c_str(), F_OK), 0);  // the socket file is removed
}

}  // namespace
}  // namespace cxlkv::serve
