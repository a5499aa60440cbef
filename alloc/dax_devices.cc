// /dev/dax discovery through libdaxctl: the one place in cxlkv that talks to libdaxctl.
//
// Each call opens a fresh libdaxctl context, so it sees devices created or reconfigured since
// the last call (daxctl create-device, reconfigure-device --mode=system-ram).
#include <daxctl/libdaxctl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>

#include <cerrno>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "cxlkv/devices.h"

namespace cxlkv {
namespace {

struct ContextDeleter {
  void operator()(daxctl_ctx* ctx) const { daxctl_unref(ctx); }
};
using Context = std::unique_ptr<daxctl_ctx, ContextDeleter>;

Result<Context> OpenContext() {
  daxctl_ctx* raw = nullptr;
  const int rc = daxctl_new(&raw);
  if (rc < 0 || raw == nullptr) {
    return Status::FromErrno("libdaxctl: daxctl_new failed, /dev/dax devices cannot be listed",
                             rc < 0 ? -rc : ENOMEM);
  }
  return Context(raw);
}

DaxDeviceInfo Describe(daxctl_region* region, daxctl_dev* dev) {
  DaxDeviceInfo info;
  const char* name = daxctl_dev_get_devname(dev);
  info.path = std::string("/dev/") + (name != nullptr ? name : "");
  info.size = daxctl_dev_get_size(dev);
  // A device's own "align" attribute exists since Linux 5.10; before, the region's applies.
  info.alignment = daxctl_dev_get_align(dev);
  if (info.alignment == 0) info.alignment = daxctl_region_get_align(region);
  // libdaxctl has a memory object only for a device bound to kmem, i.e. onlined as system RAM
  // (the same test `daxctl list` uses for its "mode").
  info.mode = daxctl_dev_get_memory(dev) != nullptr ? "system-ram" : "devdax";
  info.numa_node = daxctl_dev_get_target_node(dev);
  info.region_id = daxctl_region_get_id(region);
  return info;
}

// Calls fn(region, dev) for every enabled device. Disabled ones (the size-0 "seed" device a
// region keeps for daxctl create-device) have no /dev node and nothing to map.
template <typename Fn>
Status ForEachDevice(Fn&& fn) {
  CXLKV_ASSIGN_OR_RETURN(Context ctx, OpenContext());
  daxctl_region* region = nullptr;
  daxctl_region_foreach(ctx.get(), region) {
    daxctl_dev* dev = nullptr;
    daxctl_dev_foreach(region, dev) {
      if (daxctl_dev_is_enabled(dev)) fn(region, dev);
    }
  }
  return Status::Ok();
}

}  // namespace

std::vector<DaxDeviceInfo> DiscoverDaxDevices(std::vector<std::string>* warnings) {
  std::vector<DaxDeviceInfo> devices;
  const Status status = ForEachDevice([&devices](daxctl_region* region, daxctl_dev* dev) {
    devices.push_back(Describe(region, dev));
  });
  if (!status.ok() && warnings != nullptr) warnings->push_back(status.ToString());
  return devices;
}

Result<DaxDeviceInfo> FindDaxDevice(const std::string& path) {
  // Match by device number where the path is a character device, so a symlink or a udev alias
  // (/dev/dax/by-id/...) finds the device too; by name otherwise.
  struct stat st {};
  const bool is_char = stat(path.c_str(), &st) == 0 && S_ISCHR(st.st_mode);
  const auto major_number = static_cast<int>(major(st.st_rdev));
  const auto minor_number = static_cast<int>(minor(st.st_rdev));
  bool found = false;
  DaxDeviceInfo match;
  CXLKV_RETURN_IF_ERROR(ForEachDevice([&](daxctl_region* region, daxctl_dev* dev) {
    if (found) return;
    const bool same = is_char ? daxctl_dev_get_major(dev) == major_number &&
                                    daxctl_dev_get_minor(dev) == minor_number
                              : Describe(region, dev).path == path;
    if (same) {
      match = Describe(region, dev);
      found = true;
    }
  }));
  if (!found) return Status::NotFound("libdaxctl knows no device DAX at " + path);
  return match;
}

}  // namespace cxlkv
