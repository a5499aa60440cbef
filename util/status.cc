#include "cxlkv/status.h"

#include <cerrno>
#include <cstring>

namespace cxlkv {

std::string_view StatusCodeName(StatusCode code) {
  switch (code) {
    case StatusCode::kOk: return "OK";
    case StatusCode::kNotFound: return "NotFound";
    case StatusCode::kNoSpace: return "NoSpace";
    case StatusCode::kInvalidArgument: return "InvalidArgument";
    case StatusCode::kIOError: return "IOError";
    case StatusCode::kCorruption: return "Corruption";
    case StatusCode::kUnsupported: return "Unsupported";
    case StatusCode::kPermissionDenied: return "PermissionDenied";
    case StatusCode::kBusy: return "Busy";
  }
  return "Unknown";
}

Status::Status(StatusCode code, std::string message) {
  if (code != StatusCode::kOk) {
    state_ = std::make_shared<const State>(State{code, std::move(message)});
  }
}

const std::string& Status::message() const {
  static const std::string kEmpty;
  return state_ ? state_->message : kEmpty;
}

std::string Status::ToString() const {
  if (ok()) return "OK";
  std::string out(StatusCodeName(code()));
  if (!state_->message.empty()) {
    out += ": ";
    out += state_->message;
  }
  return out;
}

Status Status::WithContext(std::string_view context) const {
  if (ok()) return *this;
  std::string msg(context);
  msg += ": ";
  msg += state_->message;
  return Status(state_->code, std::move(msg));
}

Status Status::FromErrno(std::string_view what, int err) {
  StatusCode code;
  switch (err) {
    case ENOENT: code = StatusCode::kNotFound; break;
    case ENOSPC:
    case ENOMEM:
    case EDQUOT:
    case EFBIG: code = StatusCode::kNoSpace; break;
    case EINVAL: code = StatusCode::kInvalidArgument; break;
    case EACCES:
    case EPERM:
    case EROFS: code = StatusCode::kPermissionDenied; break;
    case EOPNOTSUPP:
    case ENOSYS:
    case ENODEV:
    case ENXIO: code = StatusCode::kUnsupported; break;
    case EBUSY:
    case EAGAIN: code = StatusCode::kBusy; break;
    default: code = StatusCode::kIOError; break;
  }
  std::string msg(what);
  msg += ": ";
  msg += std::strerror(err);
  msg += " (errno ";
  msg += std::to_string(err);
  msg += ")";
  return Status(code, std::move(msg));
}

}  // namespace cxlkv
