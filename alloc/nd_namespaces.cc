// NVDIMM namespaces through libndctl: a persistent CXL region shows up as an nvdimm region,
// and `ndctl create-namespace -m devdax` carves it into /dev/daxX.Y. This is the one file that
// talks to libndctl. Without nvdimm buses libndctl lists nothing: an empty answer, not an error.
#include <daxctl/libdaxctl.h>
#include <ndctl/libndctl.h>

#include <memory>
#include <string>
#include <vector>

#include "cxlkv/devices.h"

namespace cxlkv {
namespace {

struct NdctlUnref {
  void operator()(ndctl_ctx* ctx) const { ndctl_unref(ctx); }
};

std::string OrEmpty(const char* text) { return text != nullptr ? text : ""; }

std::string ModeName(ndctl_namespace_mode mode) {
  switch (mode) {
    case NDCTL_NS_MODE_DEVDAX: return "devdax";
    case NDCTL_NS_MODE_FSDAX: return "fsdax";
    case NDCTL_NS_MODE_SECTOR: return "sector";
    case NDCTL_NS_MODE_RAW: return "raw";
    default: return "unknown";
  }
}

// The character device of a devdax namespace: the first device of its dax region.
std::string DaxDevice(ndctl_namespace* ns) {
  ndctl_dax* dax = ndctl_namespace_get_dax(ns);
  daxctl_region* region = dax != nullptr ? ndctl_dax_get_daxctl_region(dax) : nullptr;
  if (region == nullptr) return "";
  daxctl_dev* dev = nullptr;
  daxctl_dev_foreach(region, dev) {
    const std::string name = OrEmpty(daxctl_dev_get_devname(dev));
    if (!name.empty()) return "/dev/" + name;
  }
  return "";
}

}  // namespace

std::vector<NamespaceInfo> DiscoverNamespaces(std::vector<std::string>* warnings) {
  std::vector<NamespaceInfo> out;
  ndctl_ctx* raw = nullptr;
  const int rc = ndctl_new(&raw);
  if (rc != 0 || raw == nullptr) {
    if (warnings != nullptr) {
      warnings->push_back("namespaces not listed: " +
                          Status::FromErrno("libndctl: creating a context", rc < 0 ? -rc : rc)
                              .ToString());
    }
    return out;
  }
  std::unique_ptr<ndctl_ctx, NdctlUnref> ctx(raw);
  ndctl_bus* bus = nullptr;
  ndctl_bus_foreach(ctx.get(), bus) {
    ndctl_region* region = nullptr;
    ndctl_region_foreach(bus, region) {
      ndctl_namespace* ns = nullptr;
      ndctl_namespace_foreach(region, ns) {
        if (!ndctl_namespace_is_active(ns)) continue;  // the idle seed namespace of a region
        NamespaceInfo info;
        info.name = OrEmpty(ndctl_namespace_get_devname(ns));
        info.region = OrEmpty(ndctl_region_get_devname(region));
        info.bus = OrEmpty(ndctl_bus_get_provider(bus));
        info.mode = ModeName(ndctl_namespace_get_mode(ns));
        info.size = ndctl_namespace_get_size(ns);
        if (info.mode == "devdax") info.dax_device = DaxDevice(ns);
        info.numa_node = ndctl_namespace_get_numa_node(ns);
        out.push_back(std::move(info));
      }
    }
  }
  return out;
}

}  // namespace cxlkv
