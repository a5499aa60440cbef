// Status and Result<T>: how every public cxlkv call reports failure.
//
// cxlkv never throws across its API. A call that can fail returns a Status (no value) or a
// Result<T> (a value or a Status). An OK Status holds no allocation, so returning one is as
// cheap as returning an int. A failed one carries a code a caller can act on and a message
// that names what was involved: the path, the size, the NUMA node.
//
// Thread-safety: Status and Result are values; distinct objects may be used from distinct
// threads freely, one object needs external synchronisation like any std type.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <variant>

namespace cxlkv {

enum class StatusCode : std::uint8_t {
  kOk = 0,
  kNotFound,          // no such key, file, device or NUMA node
  kNoSpace,           // a pool, tier, file system or node is full: evict, grow or go elsewhere
  kInvalidArgument,   // the caller asked for something malformed (size, alignment, option)
  kIOError,           // the OS or a device failed an operation that was well formed
  kCorruption,        // stored bytes or metadata fail their checks; never returned as data
  kUnsupported,       // this machine or build lacks the feature (no CUDA, no hugetlb pages)
  kPermissionDenied,  // the OS refused access (open /dev/dax as non-root, mbind without rights)
  kBusy,              // the object is in use (a pinned chunk, a locked pool): retry later
};

// Name of a code as written in messages: "NotFound", "NoSpace", ...
std::string_view StatusCodeName(StatusCode code);

class [[nodiscard]] Status {
 public:
  Status() = default;  // OK
  Status(StatusCode code, std::string message);

  static Status Ok() { return Status(); }
  static Status NotFound(std::string msg) { return {StatusCode::kNotFound, std::move(msg)}; }
  static Status NoSpace(std::string msg) { return {StatusCode::kNoSpace, std::move(msg)}; }
  static Status InvalidArgument(std::string msg) {
    return {StatusCode::kInvalidArgument, std::move(msg)};
  }
  static Status IOError(std::string msg) { return {StatusCode::kIOError, std::move(msg)}; }
  static Status Corruption(std::string msg) { return {StatusCode::kCorruption, std::move(msg)}; }
  static Status Unsupported(std::string msg) { return {StatusCode::kUnsupported, std::move(msg)}; }
  static Status PermissionDenied(std::string msg) {
    return {StatusCode::kPermissionDenied, std::move(msg)};
  }
  static Status Busy(std::string msg) { return {StatusCode::kBusy, std::move(msg)}; }

  // A failed system call: `what` says what was attempted ("mmap 1.0 GiB of /dev/dax0.0"); the
  // code follows errno (ENOENT -> NotFound, ENOSPC/ENOMEM -> NoSpace, EINVAL -> InvalidArgument,
  // EACCES/EPERM -> PermissionDenied, EOPNOTSUPP/ENOSYS/ENODEV -> Unsupported, EBUSY -> Busy,
  // otherwise IOError) and the message ends with strerror and the errno value.
  static Status FromErrno(std::string_view what, int err);

  bool ok() const { return state_ == nullptr; }
  StatusCode code() const { return state_ ? state_->code : StatusCode::kOk; }
  // The message without the code name; empty when OK.
  const std::string& message() const;
  // "NoSpace: slab pool on /tmp/x full (64 MiB)", or "OK".
  std::string ToString() const;

  bool IsNotFound() const { return code() == StatusCode::kNotFound; }
  bool IsNoSpace() const { return code() == StatusCode::kNoSpace; }
  bool IsInvalidArgument() const { return code() == StatusCode::kInvalidArgument; }
  bool IsIOError() const { return code() == StatusCode::kIOError; }
  bool IsCorruption() const { return code() == StatusCode::kCorruption; }
  bool IsUnsupported() const { return code() == StatusCode::kUnsupported; }

  // Returns a copy whose message is prefixed by `context` ("opening tier 1: ...").
  Status WithContext(std::string_view context) const;

 private:
  struct State {
    StatusCode code;
    std::string message;
  };
  // Shared and immutable: copying a failed Status is a reference-count increment.
  std::shared_ptr<const State> state_;
};

// A value of type T, or the Status saying why there is none.
template <typename T>
class [[nodiscard]] Result {
  static_assert(!std::is_same_v<std::remove_cv_t<T>, Status>, "use Status directly");

 public:
  Result(T value) : v_(std::in_place_index<1>, std::move(value)) {}  // NOLINT: implicit by design
  Result(Status status) : v_(std::in_place_index<0>, std::move(status)) {  // NOLINT
    if (std::get<0>(v_).ok()) {
      // An OK status without a value is a programming error; make it loud, not undefined.
      v_.template emplace<0>(StatusCode::kInvalidArgument, "Result built from an OK Status");
    }
  }

  bool ok() const { return v_.index() == 1; }
  // OK when a value is held.
  Status status() const { return ok() ? Status() : std::get<0>(v_); }

  // Access to the value; only valid when ok().
  T& value() & { return std::get<1>(v_); }
  const T& value() const& { return std::get<1>(v_); }
  T&& value() && { return std::get<1>(std::move(v_)); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  T&& operator*() && { return std::move(*this).value(); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }

  T value_or(T fallback) const& { return ok() ? value() : std::move(fallback); }

 private:
  std::variant<Status, T> v_;
};

}  // namespace cxlkv

// Early return of a failed Status (or the status of a failed Result).
#define CXLKV_RETURN_IF_ERROR(expr)                              \
  do {                                                           \
    ::cxlkv::Status cxlkv_status_ = ::cxlkv::internal::ToStatus(expr); \
    if (!cxlkv_status_.ok()) return cxlkv_status_;               \
  } while (0)

#define CXLKV_CONCAT_INNER_(a, b) a##b
#define CXLKV_CONCAT_(a, b) CXLKV_CONCAT_INNER_(a, b)
// `CXLKV_ASSIGN_OR_RETURN(auto x, MakeX());` declares x from a Result or returns its Status.
#define CXLKV_ASSIGN_OR_RETURN(lhs, expr) \
  CXLKV_ASSIGN_OR_RETURN_IMPL_(CXLKV_CONCAT_(cxlkv_result_, __LINE__), lhs, expr)
#define CXLKV_ASSIGN_OR_RETURN_IMPL_(tmp, lhs, expr) \
  auto tmp = (expr);                                 \
  if (!tmp.ok()) return tmp.status();                \
  lhs = std::move(tmp).value()

namespace cxlkv::internal {
inline Status ToStatus(Status s) { return s; }
template <typename T>
Status ToStatus(const Result<T>& r) {
  return r.status();
}
}  // namespace cxlkv::internal
