// CXL memory devices and regions, through libcxl (ndctl's CXL library).
//
// This is the one file that talks to libcxl, so that the rest of cxlkv sees plain structs and
// a build or test never depends on how libcxl names things (its firmware getter really is
// spelled "verison"). A machine without CXL has no /sys/bus/cxl: libcxl then lists nothing,
// which is an empty answer, not an error.
#include <cxl/libcxl.h>

#include <memory>
#include <string>
#include <vector>

#include "cxlkv/devices.h"

namespace cxlkv {
namespace {

struct CxlContextUnref {
  void operator()(cxl_ctx* ctx) const { cxl_unref(ctx); }
};
using CxlContext = std::unique_ptr<cxl_ctx, CxlContextUnref>;

// A fresh libcxl context, or null with a warning line saying why.
CxlContext OpenContext(std::vector<std::string>* warnings) {
  cxl_ctx* ctx = nullptr;
  const int rc = cxl_new(&ctx);
  if (rc != 0 || ctx == nullptr) {
    if (warnings != nullptr) {
      const Status status = Status::FromErrno("libcxl: creating a context", rc < 0 ? -rc : rc);
      warnings->push_back("CXL devices not listed: " + status.ToString());
    }
    return nullptr;
  }
  return CxlContext(ctx);
}

std::string OrEmpty(const char* text) { return text != nullptr ? text : ""; }

// Region mode: libcxl of this vintage has no region mode getter, so ask the endpoint decoders
// the region maps (they carry the DPA partition: ram or pmem); fall back to what the root
// decoder can hold when no endpoint says.
std::string RegionMode(cxl_region* region, cxl_decoder* root_decoder) {
  cxl_memdev_mapping* mapping = nullptr;
  cxl_mapping_foreach(region, mapping) {
    cxl_decoder* endpoint_decoder = cxl_mapping_get_decoder(mapping);
    if (endpoint_decoder == nullptr) continue;
    const cxl_decoder_mode mode = cxl_decoder_get_mode(endpoint_decoder);
    if (mode == CXL_DECODER_MODE_RAM) return "ram";
    if (mode == CXL_DECODER_MODE_PMEM) return "pmem";
  }
  const bool pmem = cxl_decoder_is_pmem_capable(root_decoder);
  const bool ram = cxl_decoder_is_volatile_capable(root_decoder);
  if (pmem && !ram) return "pmem";
  if (ram && !pmem) return "ram";
  return "unknown";
}

}  // namespace

std::vector<CxlMemdevInfo> DiscoverCxlMemdevs(std::vector<std::string>* warnings) {
  std::vector<CxlMemdevInfo> memdevs;
  CxlContext ctx = OpenContext(warnings);
  if (ctx == nullptr) return memdevs;

  cxl_memdev* memdev = nullptr;
  cxl_memdev_foreach(ctx.get(), memdev) {
    CxlMemdevInfo info;
    info.name = OrEmpty(cxl_memdev_get_devname(memdev));
    info.host = OrEmpty(cxl_memdev_get_host(memdev));
    info.ram_bytes = cxl_memdev_get_ram_size(memdev);
    info.pmem_bytes = cxl_memdev_get_pmem_size(memdev);
    info.serial = cxl_memdev_get_serial(memdev);
    info.numa_node = cxl_memdev_get_numa_node(memdev);
    info.firmware = OrEmpty(cxl_memdev_get_firmware_verison(memdev));
    memdevs.push_back(std::move(info));
  }
  return memdevs;
}

std::vector<CxlRegionInfo> DiscoverCxlRegions(std::vector<std::string>* warnings) {
  std::vector<CxlRegionInfo> regions;
  CxlContext ctx = OpenContext(warnings);
  if (ctx == nullptr) return regions;

  // Regions hang off root decoders, and root decoders off the root port of each CXL bus
  // (the ACPI0017 host bridge set): bus -> root port -> decoder -> region.
  cxl_bus* bus = nullptr;
  cxl_bus_foreach(ctx.get(), bus) {
    cxl_port* root_port = cxl_bus_get_port(bus);
    if (root_port == nullptr) continue;
    cxl_decoder* decoder = nullptr;
    cxl_decoder_foreach(root_port, decoder) {
      cxl_region* region = nullptr;
      cxl_region_foreach(decoder, region) {
        CxlRegionInfo info;
        info.name = OrEmpty(cxl_region_get_devname(region));
        info.decoder = OrEmpty(cxl_decoder_get_devname(decoder));
        info.size = cxl_region_get_size(region);
        info.mode = RegionMode(region, decoder);
        cxl_memdev_mapping* mapping = nullptr;
        cxl_mapping_foreach(region, mapping) {
          cxl_decoder* endpoint_decoder = cxl_mapping_get_decoder(mapping);
          cxl_memdev* memdev =
              endpoint_decoder != nullptr ? cxl_decoder_get_memdev(endpoint_decoder) : nullptr;
          if (memdev != nullptr) info.memdevs.push_back(OrEmpty(cxl_memdev_get_devname(memdev)));
        }
        regions.push_back(std::move(info));
      }
    }
  }
  return regions;
}

}  // namespace cxlkv
