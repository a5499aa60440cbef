#include "options/option_schema.h"

#include <gtest/gtest.h>

namespace cxlkv::options {
namespace {

struct Target {
  std::string text;
  std::int64_t count = 5;
  std::uint64_t size = 0;
  bool flag = false;
};

const OptionSpec<Target> kTable[] = {
    {{"text", OptionType::kString, "a string", 0, 0, true},
     [](Target& t, const CheckedValue& v) { t.text = v.text; },
     [](const Target& t) -> std::optional<OptionValue> { return OptionValue{t.text}; }},
    {{"count", OptionType::kInteger, "a count", 1, 9},
     [](Target& t, const CheckedValue& v) { t.count = v.integer; },
     [](const Target& t) -> std::optional<OptionValue> { return OptionValue{t.count}; }},
    {{"size", OptionType::kBytes, "a size", 1024, 1 << 20},
     [](Target& t, const CheckedValue& v) { t.size = v.bytes; },
     [](const Target& t) -> std::optional<OptionValue> {
       return OptionValue{static_cast<std::int64_t>(t.size)};
     }},
    {{"flag", OptionType::kBool, "a flag"},
     [](Target& t, const CheckedValue& v) { t.flag = v.flag; },
     [](const Target& t) -> std::optional<OptionValue> { return OptionValue{t.flag}; }},
};

std::string ErrorOf(std::vector<NamedValue> values) {
  Target t;
  Status s = Apply<Target>(kTable, values, "where.", t);
  return s.ok() ? "ok" : s.message();
}

TEST(OptionSchemaTest, TypedAndTextValuesSetTheSameFields) {
  Target typed;
  ASSERT_TRUE(Apply<Target>(kTable,
                            std::vector<NamedValue>{{"text", {std::string("x")}, "text"},
                                                    {"count", {std::int64_t{7}}, "count"},
                                                    {"size", {std::int64_t{4096}}, "size"},
                                                    {"flag", {true}, "flag"}},
                            "", typed)
                  .ok());
  Target text;
  ASSERT_TRUE(Apply<Target>(kTable,
                            std::vector<NamedValue>{{"text", {std::string("x")}, "text"},
                                                    {"count", {std::string("7")}, "count"},
                                                    {"size", {std::string("4K")}, "size"},
                                                    {"flag", {std::string("true")}, "flag"}},
                            "", text)
                  .ok());
  EXPECT_EQ(Describe<Target>(kTable, typed), Describe<Target>(kTable, text));
  EXPECT_EQ(Describe<Target>(kTable, typed), "text = \"x\"\ncount = 7\nsize = 4096\nflag = true\n");
}

TEST(OptionSchemaTest, ErrorsNameTheKeyAndSayWhatWasExpected) {
  const NamedValue text{"text", {std::string("x")}, "text"};
  EXPECT_EQ(ErrorOf({text, {"count", {std::int64_t{10}}, "t.count"}}),
            "t.count is 10; it must be 1 to 9");
  EXPECT_EQ(ErrorOf({text, {"count", {std::string("7x")}, "t.count"}}),
            "t.count must be an integer");
  EXPECT_EQ(ErrorOf({text, {"size", {std::string("2M")}, "t.size"}}),
            "t.size is 2.0 MiB; it must be 1.0 KiB to 1.0 MiB");
  EXPECT_NE(ErrorOf({text, {"size", {std::string("lots")}, "t.size"}}).find("t.size: "),
            std::string::npos);
  EXPECT_EQ(ErrorOf({text, {"flag", {std::int64_t{1}}, "t.flag"}}), "t.flag must be true or false");
  EXPECT_EQ(ErrorOf({text, {"cuont", {std::int64_t{1}}, "t.cuont"}}),
            "unknown key t.cuont (known: text, count, size, flag)");
  EXPECT_EQ(ErrorOf({{"count", {std::int64_t{1}}, "count"}}), "where.text is required");
}

TEST(OptionSchemaTest, SizeListsFromListsAndStrings) {
  const OptionInfo list{"sizes", OptionType::kSizeList, ""};
  Result<CheckedValue> a = Check(list, {std::string("2M,4096")}, "sizes");
  Result<CheckedValue> b =
      Check(list, {std::vector<OptionValue>{{std::string("2M")}, {std::int64_t{4096}}}}, "sizes");
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_EQ(a->sizes, (std::vector<std::uint64_t>{2u << 20, 4096}));
  EXPECT_EQ(a->sizes, b->sizes);
  Result<CheckedValue> bad = Check(list, {std::string("2M,x")}, "sizes");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("sizes[1]"), std::string::npos);
}

TEST(OptionSchemaTest, KeyValueItems) {
  Result<NamedValue> kv = ParseKeyValue("count=3", "--tier dram,1G");
  ASSERT_TRUE(kv.ok());
  EXPECT_EQ(kv->key, "count");
  EXPECT_EQ(std::get<std::string>(kv->value.v), "3");
  EXPECT_EQ(kv->name, "--tier dram,1G: count");
  EXPECT_FALSE(ParseKeyValue("count", "--tier").ok());
  EXPECT_FALSE(ParseKeyValue("=3", "--tier").ok());
}

TEST(OptionSchemaTest, HelpListsEveryKeyWithItsRangeAndDefault) {
  const std::string help = Help<Target>(kTable);
  EXPECT_NE(help.find("  text (string, required): a string\n"), std::string::npos) << help;
  EXPECT_NE(help.find("  count (1..9, default 5): a count\n"), std::string::npos) << help;
  EXPECT_NE(help.find("  size (size 1.0 KiB..1.0 MiB, default 0): a size\n"), std::string::npos)
      << help;
}

TEST(OptionSchemaTest, TomlValues) {
  EXPECT_EQ(ToToml({0.5}), "0.5");
  EXPECT_EQ(ToToml({1.0}), "1.0");
  EXPECT_EQ(ToToml({std::string("a\"b")}), "\"a\\\"b\"");
  EXPECT_EQ(ToToml({std::vector<OptionValue>{{std::int64_t{1}}, {std::int64_t{2}}}}), "[1, 2]");
}

}  // namespace
}  // namespace cxlkv::options
