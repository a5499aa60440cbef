// _cxlkv: the Store for Python (pybind11). The package's __init__.py re-exports it and adds
// the conversions that belong in Python (torch tensors to byte views).
//
// Bytes move without extra copies: put reads straight from the caller's buffer (any object
// with the buffer protocol, C-contiguous: bytes, numpy arrays, memoryviews), get_into writes
// straight into one, pin exposes the chunk in its tier as a read-only buffer. The GIL is
// released around every copy, so Python threads (and asyncio's executors) run in parallel.
//
// Batched operations run on the store's copy threads; a CompletionQueue keeps each
// operation's buffers (and the caller's user data) alive until its completion has been
// polled, and waits for every operation in flight before it goes away.
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <atomic>
#include <cstring>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "cxlkv/completion_queue.h"
#include "cxlkv/store.h"
#include "options/store_schema.h"
#include "python/py_convert.h"

namespace cxlkv::python {
namespace {

// A lease on a chunk, exported as a read-only buffer of its bytes in the tier.
// It counts itself in its store's lease counter, so that close() can refuse while leases
// live (the Store must outlive every PinnedChunk).
class Pinned {
 public:
  Pinned(PinnedChunk p, std::shared_ptr<std::atomic<long>> leases)
      : p_(std::move(p)), leases_(std::move(leases)) {
    leases_->fetch_add(1);
  }
  ~Pinned() { Release(); }
  Pinned(Pinned&& other) noexcept : p_(std::move(other.p_)), leases_(std::move(other.leases_)) {}
  Pinned& operator=(Pinned&&) = delete;
  Pinned(const Pinned&) = delete;
  Pinned& operator=(const Pinned&) = delete;

  const PinnedChunk& chunk() const {
    if (p_.data() == nullptr) throw py::value_error("the lease was released");
    return p_;
  }
  void Release() {
    if (p_.data() == nullptr || leases_ == nullptr) return;
    p_.Release();
    leases_->fetch_sub(1);
  }
  bool released() const { return p_.data() == nullptr; }

 private:
  PinnedChunk p_;
  std::shared_ptr<std::atomic<long>> leases_;
};

class PyStore;

// Completions of batched operations, with what each operation needs kept alive.
class PyCompletionQueue {
 public:
  PyCompletionQueue() {
    Result<std::unique_ptr<CompletionQueue>> q = CompletionQueue::Create();
    if (!q.ok()) Raise(q.status());
    q_ = std::move(q).value();
  }
  ~PyCompletionQueue() {
    // The store writes into (or reads from) the held buffers until each completion: wait for
    // every one still in flight before the buffers go.
    {
      py::gil_scoped_release release;
      std::vector<Completion> out(64);
      while (InFlight() > 0) {
        const std::size_t n = q_->Wait(out, 1, std::chrono::milliseconds(100));
        std::lock_guard lock(mu_);
        in_flight_ -= n;
      }
    }
    held_.clear();  // Python objects: with the GIL held again
  }

  struct Held {
    py::object user_data;
    Bytes bytes;
    std::unique_ptr<ChunkMeta> meta;  // a get's metadata, filled before its completion
  };

  std::uint64_t Hold(Held h) {
    std::lock_guard lock(mu_);
    const std::uint64_t id = next_id_++;
    held_.emplace(id, std::move(h));
    ++in_flight_;
    return id;
  }
  void Forget(std::uint64_t id) {  // a submit that failed as a whole
    std::lock_guard lock(mu_);
    held_.erase(id);
    --in_flight_;
  }

  // [(user_data, code, size, message, meta)]: code "OK", "NotFound", ...
  py::list Poll(std::size_t max, int timeout_ms, std::size_t min_count) {
    std::vector<Completion> out(max == 0 ? 1 : max);
    std::size_t n;
    {
      py::gil_scoped_release release;
      n = timeout_ms == 0 ? q_->Poll(out)
                          : q_->Wait(out, min_count, std::chrono::milliseconds(timeout_ms));
    }
    py::list result;
    std::lock_guard lock(mu_);
    in_flight_ -= n;
    for (std::size_t i = 0; i < n; ++i) result.append(Take(out[i]));
    return result;
  }

  int fd() const { return q_->eventfd(); }
  std::size_t in_flight() const { return InFlight(); }
  CompletionQueue& queue() { return *q_; }

 private:
  std::size_t InFlight() const {
    std::lock_guard lock(mu_);
    return in_flight_;
  }
  py::tuple Take(const Completion& c) {  // mu_ held
    auto it = held_.find(c.user_data);
    py::object user = py::none();
    py::object meta = py::none();
    if (it != held_.end()) {
      user = it->second.user_data;
      if (it->second.meta != nullptr && c.status.ok()) meta = MetaBytes(*it->second.meta);
      held_.erase(it);
    }
    return py::make_tuple(user, std::string(StatusCodeName(c.status.code())), c.size,
                          c.status.message(), meta);
  }

  std::unique_ptr<CompletionQueue> q_;
  mutable std::mutex mu_;
  std::unordered_map<std::uint64_t, Held> held_;
  std::uint64_t next_id_ = 1;
  std::size_t in_flight_ = 0;
};

class PyStore {
 public:
  explicit PyStore(StoreOptions o) {
    Result<std::unique_ptr<Store>> s = Status::Unsupported("not opened");
    {
      py::gil_scoped_release release;
      s = Store::Open(std::move(o));
    }
    if (!s.ok()) {
      // Not a key lookup: a missing file or device is a RuntimeError, not a KeyError.
      if (s.status().IsInvalidArgument()) Raise(s.status());
      throw std::runtime_error(s.status().ToString());
    }
    store_ = std::move(s).value();
  }

  Store& store() {
    if (store_ == nullptr) throw py::value_error("the store is closed");
    return *store_;
  }

  void Put(const std::string& key, const py::object& data, const py::bytes& meta) {
    Bytes b = View(data, false);
    const ChunkMeta m = MetaArg(meta);
    Status s;
    {
      py::gil_scoped_release release;
      s = store().Put(key, std::span<const std::byte>(b.data, b.size), m);
    }
    if (!s.ok()) Raise(s);
  }

  std::size_t GetInto(const std::string& key, const py::object& out) {
    Bytes b = View(out, true);
    Result<std::size_t> n = Status::NotFound("");
    {
      py::gil_scoped_release release;
      n = store().Get(key, std::span<std::byte>(b.data, b.size));
    }
    if (!n.ok()) Raise(n.status());
    return *n;
  }

  // bytes, or None when absent.
  py::object Get(const std::string& key) {
    Result<PinnedChunk> p = store().Pin(key);
    if (!p.ok()) {
      if (p.status().IsNotFound()) return py::none();
      Raise(p.status());
    }
    return py::bytes(reinterpret_cast<const char*>(p->data()), p->size());
  }

  py::object Meta(const std::string& key) {
    Result<PinnedChunk> p = store().Pin(key);
    if (!p.ok()) {
      if (p.status().IsNotFound()) return py::none();
      Raise(p.status());
    }
    return MetaBytes(p->meta());
  }

  Pinned Pin(const std::string& key) {
    Result<PinnedChunk> p = store().Pin(key);
    if (!p.ok()) Raise(p.status());
    return Pinned(std::move(p).value(), leases_);
  }

  // requests: [(key, writable buffer, user_data)]
  void SubmitGets(const py::list& requests, PyCompletionQueue& cq) {
    std::vector<std::string> keys;
    std::vector<GetRequest> reqs;
    std::vector<std::uint64_t> ids;
    for (const py::handle& h : requests) {
      const auto t = h.cast<py::tuple>();
      if (t.size() != 3) throw py::value_error("a get request is (key, buffer, user_data)");
      PyCompletionQueue::Held held;
      held.user_data = py::reinterpret_borrow<py::object>(t[2]);
      held.bytes = View(py::reinterpret_borrow<py::object>(t[1]), true);
      held.meta = std::make_unique<ChunkMeta>();
      GetRequest r;
      keys.push_back(t[0].cast<std::string>());
      r.dst = std::span<std::byte>(held.bytes.data, held.bytes.size);
      r.meta = held.meta.get();
      r.user_data = cq.Hold(std::move(held));
      ids.push_back(r.user_data);
      reqs.push_back(r);
    }
    for (std::size_t i = 0; i < reqs.size(); ++i) reqs[i].key = keys[i];
    Status s;
    {
      py::gil_scoped_release release;
      s = store().SubmitGets(reqs, cq.queue());
    }
    if (!s.ok()) {
      for (std::uint64_t id : ids) cq.Forget(id);
      Raise(s);
    }
  }

  // requests: [(key, buffer, user_data, meta bytes)]
  void SubmitPuts(const py::list& requests, PyCompletionQueue& cq) {
    std::vector<std::string> keys;
    std::vector<PutRequest> reqs;
    std::vector<std::uint64_t> ids;
    for (const py::handle& h : requests) {
      const auto t = h.cast<py::tuple>();
      if (t.size() != 4) throw py::value_error("a put request is (key, buffer, user_data, meta)");
      PyCompletionQueue::Held held;
      held.user_data = py::reinterpret_borrow<py::object>(t[2]);
      held.bytes = View(py::reinterpret_borrow<py::object>(t[1]), false);
      PutRequest r;
      keys.push_back(t[0].cast<std::string>());
      r.bytes = std::span<const std::byte>(held.bytes.data, held.bytes.size);
      r.meta = MetaArg(t[3].cast<py::bytes>());
      r.user_data = cq.Hold(std::move(held));
      ids.push_back(r.user_data);
      reqs.push_back(r);
    }
    for (std::size_t i = 0; i < reqs.size(); ++i) reqs[i].key = keys[i];
    Status s;
    {
      py::gil_scoped_release release;
      s = store().SubmitPuts(reqs, cq.queue());
    }
    if (!s.ok()) {
      for (std::uint64_t id : ids) cq.Forget(id);
      Raise(s);
    }
  }

  void Close() {
    if (const long n = leases_->load(); n != 0) {
      throw py::value_error("cannot close the store: " + std::to_string(n) +
                            " pinned chunk(s) still held; release them first");
    }
    py::gil_scoped_release release;
    store_.reset();
  }

 private:
  std::unique_ptr<Store> store_;
  std::shared_ptr<std::atomic<long>> leases_ = std::make_shared<std::atomic<long>>(0);
};

}  // namespace

void BindLmcacheConnector(py::module_& m);  // lmcache_native.cc

}  // namespace cxlkv::python

PYBIND11_MODULE(_cxlkv, m) {
  using namespace cxlkv::python;  // NOLINT(google-build-using-namespace)
  m.doc() = "cxlkv: a tiered store of KV-cache chunks over DRAM, CXL memory, /dev/dax and files";
  m.attr("MAX_KEY_SIZE") = cxlkv::kMaxKeySize;
  m.attr("MAX_META_SIZE") = cxlkv::ChunkMeta::kMaxSize;

  py::class_<Pinned>(m, "Pinned", py::buffer_protocol(),
                     "A lease on a chunk: a read-only buffer of its bytes in their tier")
      .def_buffer([](Pinned& p) {
        const cxlkv::PinnedChunk& c = p.chunk();
        return py::buffer_info(const_cast<std::byte*>(c.data()), 1,
                               py::format_descriptor<std::uint8_t>::format(), 1,
                               {static_cast<py::ssize_t>(c.size())}, {1}, /*readonly=*/true);
      })
      .def_property_readonly("size", [](const Pinned& p) { return p.chunk().size(); })
      .def_property_readonly("tier", [](const Pinned& p) { return p.chunk().tier(); })
      .def_property_readonly("meta", [](const Pinned& p) { return MetaBytes(p.chunk().meta()); })
      .def_property_readonly("released", &Pinned::released)
      .def("release", &Pinned::Release, "Ends the lease (views of it must not be used after)")
      .def("__enter__", [](Pinned& p) -> Pinned& { return p; }, py::return_value_policy::reference)
      .def("__exit__", [](Pinned& p, const py::args&) { p.Release(); });

  py::class_<PyCompletionQueue>(m, "CompletionQueue",
                                "Completions of batched operations; fd is an eventfd, readable "
                                "while completions are pending")
      .def(py::init<>())
      .def_property_readonly("fd", &PyCompletionQueue::fd)
      .def_property_readonly("in_flight", &PyCompletionQueue::in_flight)
      .def("poll", &PyCompletionQueue::Poll, py::arg("max") = 64, py::arg("timeout_ms") = 0,
           py::arg("min_count") = 1,
           "[(user_data, code, size, message, meta)]; waits up to timeout_ms for min_count");

  py::class_<PyStore>(m, "Store")
      .def(py::init([](const py::object& tiers, const py::kwargs& kwargs) {
             return std::make_unique<PyStore>(Options(tiers, kwargs));
           }),
           py::arg("tiers"),
           "tiers: a list of dicts of [[tier]] keys; keyword arguments: the [store] keys and "
           "the [spill] keys prefixed spill_ (cxlkv.option_help() lists them)")
      .def("put", &PyStore::Put, py::arg("key"), py::arg("data"), py::arg("meta") = py::bytes(),
           "Stores a buffer's bytes (write once)")
      .def("get_into", &PyStore::GetInto, py::arg("key"), py::arg("out"),
           "Copies the chunk into a writable buffer; returns its size; KeyError when absent")
      .def("get", &PyStore::Get, py::arg("key"), "The chunk as bytes, or None")
      .def("meta", &PyStore::Meta, py::arg("key"), "The chunk's metadata bytes, or None")
      .def("pin", &PyStore::Pin, py::arg("key"), py::keep_alive<0, 1>(),
           "A lease on the chunk in place (zero-copy); KeyError when absent")
      .def("contains", [](PyStore& s, const std::string& k) { return s.store().Contains(k); })
      .def("__contains__", [](PyStore& s, const std::string& k) { return s.store().Contains(k); })
      .def("size", [](PyStore& s, const std::string& k) -> py::object {
        cxlkv::Result<std::size_t> n = s.store().Size(k);
        return n.ok() ? py::object(py::int_(*n)) : py::object(py::none());
      })
      .def("remove", [](PyStore& s, const std::string& k) { return s.store().Remove(k).ok(); })
      .def("submit_gets", &PyStore::SubmitGets, py::arg("requests"), py::arg("cq"),
           "[(key, writable buffer, user_data)], in the order they will be read")
      .def("submit_puts", &PyStore::SubmitPuts, py::arg("requests"), py::arg("cq"),
           "[(key, buffer, user_data, meta)]")
      .def("stats", [](PyStore& s) { return StatsDict(s.store().Stats()); })
      .def("stats_text", [](PyStore& s) { return s.store().Stats().ToString(); })
      .def("maintain", [](PyStore& s) {
        py::gil_scoped_release release;
        s.store().Maintain();
      })
      .def("close", &PyStore::Close,
           "Completes batched operations and unmaps the tiers; leases must be released first");

  // The options schema, for the Python routes that read settings of their own (LMCache's
  // extra_config) and for tests that compare routes.
  m.attr("OPTION_KEYS") = cxlkv::options::FlatKeys();
  m.attr("DURABILITIES") = cxlkv::options::Durabilities();
  m.def("option_help", [] { return cxlkv::options::StoreOptionsHelp(); },
        "The [store], [[tier]] and [spill] keys: type, range, default, meaning");
  m.def("describe_options",
        [](const py::object& tiers, const py::kwargs& kwargs) {
          return cxlkv::options::DescribeStoreOptions(Options(tiers, kwargs));
        },
        py::arg("tiers"), "The options cxlkv.open(tiers, **kwargs) would open, as TOML");
  m.def("describe_connector_options",
        [](const py::kwargs& adapter_params) {
          return cxlkv::options::DescribeStoreOptions(ConnectorOptions(adapter_params));
        },
        "The options CxlkvConnector(**adapter_params) would open, as TOML");

  BindLmcacheConnector(m);
}
