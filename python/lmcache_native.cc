// The LmcacheConnector for Python: the object LMCache's MP-mode `native_plugin` L2 adapter
// loads (`cxlkv.lmcache_native.CxlkvConnector`, constructed with the `adapter_params` of
// `--l2-adapter` as keyword arguments) and wraps in its NativeConnectorL2Adapter.
//
// Method names and shapes are that adapter's (lmcache/v1/distributed/l2_adapters/
// native_connector_l2_adapter.py): event_fd() -> int; submit_batch_get/set(keys, memoryviews)
// -> future id; submit_batch_exists/delete(keys) -> future id; drain_completions() ->
// [(future_id, ok, error, [bool per key])]; close(). The buffers of a get or set are held
// (their buffer-protocol exports kept) until its completion is drained or the connector is
// closed. The GIL is released while the store works, so LMCache's demux thread drains while
// its other threads submit.
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <unordered_map>
#include <vector>

#include "python/lmcache_connector.h"
#include "python/py_convert.h"

namespace cxlkv::python {
namespace {

using lmcache::BatchCompletion;
using lmcache::LmcacheConnector;

class PyConnector {
 public:
  explicit PyConnector(const py::kwargs& kw) {
    StoreOptions o = ConnectorOptions(kw);
    Result<std::unique_ptr<LmcacheConnector>> c = Status::Unsupported("not opened");
    {
      py::gil_scoped_release release;
      c = LmcacheConnector::Open(std::move(o));
    }
    if (!c.ok()) {
      if (c.status().IsInvalidArgument()) Raise(c.status());
      throw std::runtime_error("cxlkv connector: " + c.status().ToString());
    }
    c_ = std::move(c).value();
  }
  ~PyConnector() {
    if (c_ != nullptr) Close();
  }

  int EventFd() {
    const int fd = c_->event_fd();
    if (fd < 0) throw py::value_error("the cxlkv connector is closed");
    return fd;
  }

  std::uint64_t SubmitGet(const std::vector<std::string>& keys, const py::list& bufs) {
    std::vector<Bytes> held = Views(bufs, /*writable=*/true);
    std::vector<std::span<std::byte>> spans;
    for (const Bytes& b : held) spans.emplace_back(b.data, b.size);
    return Submit(std::move(held), [&] { return c_->SubmitGet(keys, spans); });
  }

  std::uint64_t SubmitSet(const std::vector<std::string>& keys, const py::list& bufs) {
    std::vector<Bytes> held = Views(bufs, /*writable=*/false);
    std::vector<std::span<const std::byte>> spans;
    for (const Bytes& b : held) spans.emplace_back(b.data, b.size);
    return Submit(std::move(held), [&] { return c_->SubmitSet(keys, spans); });
  }

  std::uint64_t SubmitExists(const std::vector<std::string>& keys) {
    return Submit({}, [&] { return c_->SubmitExists(keys); });
  }

  std::uint64_t SubmitDelete(const std::vector<std::string>& keys) {
    return Submit({}, [&] { return c_->SubmitDelete(keys); });
  }

  py::list Drain() {
    py::list out;
    if (c_ == nullptr) return out;
    std::vector<BatchCompletion> done;
    std::vector<std::vector<Bytes>> finished;  // buffers to release, with the GIL held
    {
      // mu_ is never waited for with the GIL held: a submitting thread holds mu_ and needs the
      // GIL back when its submit returns.
      py::gil_scoped_release release;
      done = c_->Drain();
      std::lock_guard lock(mu_);
      for (const BatchCompletion& d : done) {
        auto it = held_.find(d.future_id);
        if (it == held_.end()) continue;
        finished.push_back(std::move(it->second));
        held_.erase(it);
      }
    }
    for (BatchCompletion& d : done) {
      py::list per_key;
      for (bool k : d.per_key) per_key.append(py::bool_(k));
      out.append(py::make_tuple(d.future_id, d.ok, d.error, per_key));
    }
    return out;
  }

  // Not part of LMCache's contract: for operators and tools (tiers, recovery, hits).
  py::dict Stats() {
    Result<StoreStats> st = Status::Unsupported("");
    {
      py::gil_scoped_release release;
      st = c_->Stats();
    }
    if (!st.ok()) throw py::value_error("the cxlkv connector is closed");
    return StatsDict(*st);
  }

  void Close() {
    if (c_ == nullptr) return;
    std::unordered_map<std::uint64_t, std::vector<Bytes>> held;
    {
      py::gil_scoped_release release;
      c_->Close();  // waits for every batch in flight
      std::lock_guard lock(mu_);
      held.swap(held_);
    }
  }

 private:
  static std::vector<Bytes> Views(const py::list& bufs, bool writable) {
    std::vector<Bytes> held;
    held.reserve(bufs.size());
    for (const py::handle& h : bufs) {
      held.push_back(View(py::reinterpret_borrow<py::object>(h), writable));
    }
    return held;
  }

  template <typename F>
  std::uint64_t Submit(std::vector<Bytes> held, F submit) {
    Result<std::uint64_t> id = Status::Unsupported("not submitted");
    {
      py::gil_scoped_release release;
      // Held across the submit: the batch may complete, and LMCache's demux thread drain it,
      // before this thread has recorded its buffers.
      std::lock_guard lock(mu_);
      id = submit();
      if (id.ok() && !held.empty()) held_.emplace(*id, std::move(held));
    }
    if (!id.ok()) Raise(id.status());
    return *id;
  }

  std::unique_ptr<LmcacheConnector> c_;
  std::mutex mu_;
  std::unordered_map<std::uint64_t, std::vector<Bytes>> held_;  // guarded by mu_
};

}  // namespace

void BindLmcacheConnector(py::module_& m) {
  py::class_<PyConnector>(m, "LmcacheConnector",
                          "A cxlkv Store behind LMCache's native storage-connector contract "
                          "(the object its MP-mode native_plugin L2 adapter wraps)")
      .def(py::init<const py::kwargs&>())
      .def("event_fd", &PyConnector::EventFd)
      .def("submit_batch_get", &PyConnector::SubmitGet, py::arg("keys"), py::arg("bufs"))
      .def("submit_batch_set", &PyConnector::SubmitSet, py::arg("keys"), py::arg("bufs"))
      .def("submit_batch_exists", &PyConnector::SubmitExists, py::arg("keys"))
      .def("submit_batch_delete", &PyConnector::SubmitDelete, py::arg("keys"))
      .def("drain_completions", &PyConnector::Drain)
      .def("stats", &PyConnector::Stats, "The store's statistics (not used by LMCache)")
      .def("close", &PyConnector::Close);
}

}  // namespace cxlkv::python
