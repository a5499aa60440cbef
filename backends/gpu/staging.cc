#include "backends/gpu/staging.h"

#include <algorithm>

namespace cxlkv::internal {

StagingPipeline::StagingPipeline(StagingEngine& engine, std::size_t buffer_bytes,
                                 unsigned buffers)
    : engine_(engine), buffer_bytes_(buffer_bytes), busy_(std::max(buffers, 1u), false) {}

Status StagingPipeline::ToDevice(const StagedRange& range) {
  for (std::size_t off = 0; off < range.len; off += buffer_bytes_) {
    const std::size_t len = std::min(buffer_bytes_, range.len - off);
    const unsigned b = next_;
    next_ = (next_ + 1) % buffers();
    if (busy_[b]) {
      // The DMA that last read this buffer must be done before the CPU overwrites it.
      CXLKV_RETURN_IF_ERROR(engine_.Wait(b));
      busy_[b] = false;
    }
    CXLKV_RETURN_IF_ERROR(engine_.HostToBuffer(b, range.src + off, len));
    CXLKV_RETURN_IF_ERROR(engine_.BufferToDevice(b, range.dst + off, len));
    busy_[b] = true;
  }
  return Status::Ok();
}

Status StagingPipeline::FromDevice(std::span<const StagedRange> ranges,
                                   const std::function<void(std::size_t)>& range_done) {
  // Buffers of an earlier ToDevice may still be read by their DMAs.
  CXLKV_RETURN_IF_ERROR(Drain());
  struct Piece {
    std::size_t range;
    std::size_t offset;
    std::size_t len;
    bool last;  // the range's last piece
  };
  std::vector<Piece> pieces;
  for (std::size_t i = 0; i < ranges.size(); ++i) {
    if (ranges[i].len == 0) continue;
    for (std::size_t off = 0; off < ranges[i].len; off += buffer_bytes_) {
      const std::size_t len = std::min(buffer_bytes_, ranges[i].len - off);
      pieces.push_back({i, off, len, off + len == ranges[i].len});
    }
  }
  const std::size_t n = buffers();
  auto issue = [&](std::size_t k) {
    const Piece& p = pieces[k];
    return engine_.DeviceToBuffer(static_cast<unsigned>(k % n), ranges[p.range].src + p.offset,
                                  p.len);
  };
  // The first n DMAs go out at once; each later one reuses the buffer just copied out.
  for (std::size_t k = 0; k < std::min(n, pieces.size()); ++k) {
    CXLKV_RETURN_IF_ERROR(issue(k));
    busy_[k % n] = true;
  }
  for (std::size_t k = 0; k < pieces.size(); ++k) {
    const unsigned b = static_cast<unsigned>(k % n);
    const Piece& p = pieces[k];
    CXLKV_RETURN_IF_ERROR(engine_.Wait(b));
    busy_[b] = false;
    CXLKV_RETURN_IF_ERROR(engine_.BufferToHost(b, ranges[p.range].dst + p.offset, p.len));
    if (k + n < pieces.size()) {
      CXLKV_RETURN_IF_ERROR(issue(k + n));
      busy_[b] = true;
    }
    if (p.last && range_done) range_done(p.range);
  }
  // Empty ranges are done at once; report them too.
  for (std::size_t i = 0; i < ranges.size(); ++i) {
    if (ranges[i].len == 0 && range_done) range_done(i);
  }
  next_ = 0;
  return Status::Ok();
}

Status StagingPipeline::Drain() {
  for (unsigned b = 0; b < buffers(); ++b) {
    if (!busy_[b]) continue;
    CXLKV_RETURN_IF_ERROR(engine_.Wait(b));
    busy_[b] = false;
  }
  return Status::Ok();
}

}  // namespace cxlkv::internal
