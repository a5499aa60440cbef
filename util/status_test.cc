#include "cxlkv/status.h"

#include <cerrno>
#include <memory>
#include <string>

#include <gtest/gtest.h>

namespace cxlkv {
namespace {

TEST(StatusTest, OkIsCheapAndPrintsOk) {
  Status s;
  EXPECT_TRUE(s.ok());
  EXPECT_EQ(s.code(), StatusCode::kOk);
  EXPECT_EQ(s.ToString(), "OK");
  EXPECT_TRUE(s.message().empty());
}

TEST(StatusTest, CodesAndMessages) {
  Status s = Status::NoSpace("pool /tmp/p full (64.0 MiB)");
  EXPECT_FALSE(s.ok());
  EXPECT_TRUE(s.IsNoSpace());
  EXPECT_EQ(s.ToString(), "NoSpace: pool /tmp/p full (64.0 MiB)");
  EXPECT_EQ(s.WithContext("tier 1").ToString(), "NoSpace: tier 1: pool /tmp/p full (64.0 MiB)");
  EXPECT_EQ(StatusCodeName(StatusCode::kCorruption), "Corruption");
}

TEST(StatusTest, FromErrnoMapsCodesAndNamesTheError) {
  EXPECT_TRUE(Status::FromErrno("open /x", ENOENT).IsNotFound());
  EXPECT_TRUE(Status::FromErrno("mmap", ENOMEM).IsNoSpace());
  EXPECT_TRUE(Status::FromErrno("write", ENOSPC).IsNoSpace());
  EXPECT_TRUE(Status::FromErrno("mbind", EINVAL).IsInvalidArgument());
  EXPECT_EQ(Status::FromErrno("open", EACCES).code(), StatusCode::kPermissionDenied);
  EXPECT_TRUE(Status::FromErrno("x", EOPNOTSUPP).IsUnsupported());
  EXPECT_TRUE(Status::FromErrno("pread", EIO).IsIOError());
  const std::string msg = Status::FromErrno("open /dev/dax9.9", ENOENT).message();
  EXPECT_NE(msg.find("open /dev/dax9.9"), std::string::npos);
  EXPECT_NE(msg.find("errno 2"), std::string::npos);
}

Result<int> Half(int x) {
  if (x % 2 != 0) return Status::InvalidArgument(std::to_string(x) + " is odd");
  return x / 2;
}

Result<int> Quarter(int x) {
  CXLKV_ASSIGN_OR_RETURN(int h, Half(x));
  CXLKV_ASSIGN_OR_RETURN(int q, Half(h));
  return q;
}

Status CheckEven(int x) {
  CXLKV_RETURN_IF_ERROR(Half(x));
  return Status::Ok();
}

TEST(ResultTest, ValueOrStatusAndMacros) {
  EXPECT_EQ(*Quarter(8), 2);
  Result<int> r = Quarter(6);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().message(), "3 is odd");
  EXPECT_EQ(r.value_or(-1), -1);
  EXPECT_TRUE(CheckEven(4).ok());
  EXPECT_TRUE(CheckEven(5).IsInvalidArgument());
}

TEST(ResultTest, MoveOnlyValues) {
  Result<std::unique_ptr<int>> r = std::make_unique<int>(7);
  ASSERT_TRUE(r.ok());
  std::unique_ptr<int> p = std::move(r).value();
  EXPECT_EQ(*p, 7);
}

TEST(ResultTest, OkStatusWithoutValueBecomesAnError) {
  Result<int> r{Status::Ok()};
  EXPECT_FALSE(r.ok());
  EXPECT_TRUE(r.status().IsInvalidArgument());
}

}  // namespace
}  // namespace cxlkv
