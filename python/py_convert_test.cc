// StatsDict, the dict Python's Store.stats() (and the LMCache connector's stats()) returns,
// checked in an embedded interpreter.
#include <pybind11/embed.h>

#include <gtest/gtest.h>

#include <string>

#include "python/py_convert.h"
#include "tests/store_stats_sample.h"

namespace cxlkv::python {
namespace {

using testing::CounterPlace;

TEST(PyConvertTest, StatsDictShowsEveryStoreCounter) {
  py::scoped_interpreter interpreter;
  const StoreStats st = testing::DistinctStoreStats();
  const py::dict stats = StatsDict(st);
  const py::list tiers = stats["tiers"];
  ASSERT_EQ(tiers.size(), 2u);
  testing::ForEachCounter(st, [&](const CounterPlace& at, const CounterInfo& info,
                                  CounterValue value) {
    const py::dict where = at.tier >= 0      ? py::dict(tiers[static_cast<std::size_t>(at.tier)])
                           : at.prefetch     ? py::dict(stats["prefetch"])
                           : at.op != nullptr ? py::dict(stats[std::string(at.op->key).c_str()])
                                              : stats;
    const std::string key(info.key);
    ASSERT_TRUE(where.contains(key)) << key << " is not in " << std::string(py::repr(where));
    const py::object got = where[key.c_str()];
    std::visit(
        [&](auto v) {
          // A flag is a Python bool, a count an int, anything else a float.
          using V = decltype(v);
          const bool type_ok = std::is_same_v<V, bool>            ? py::isinstance<py::bool_>(got)
                               : std::is_same_v<V, std::uint64_t> ? py::isinstance<py::int_>(got)
                                                                  : py::isinstance<py::float_>(got);
          EXPECT_TRUE(type_ok) << key << " is a " << std::string(py::repr(got.get_type()));
          if (type_ok) {
            EXPECT_EQ(got.cast<V>(), v) << key;
          }
        },
        value);
  });
  const py::dict spill = tiers[1];
  for (const TierLabel& label : TierLabels()) {
    EXPECT_EQ(spill[std::string(label.key).c_str()].cast<std::string>(),
              st.tiers[1].*label.field)
        << label.key;
  }
}

}  // namespace
}  // namespace cxlkv::python
