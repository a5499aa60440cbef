// ReservedChunk and Store::Reserve: a put in two steps, so a chunk's bytes can be written
// straight into its slot (a server receives a payload from the socket into the tier) and
// published only once they are all there. The slot is taken exactly as Put takes it
// (ReserveSlot, store.cc) and published by the same code (PublishSlot); between the two the
// slot belongs to the reservation alone: it is in no index, policy or counter, so no reader,
// evictor or mover can reach it.
#include <chrono>
#include <cstdint>
#include <utility>

#include "backends/store_impl.h"
#include "cxlkv/store.h"

namespace cxlkv {

struct ReservedChunk::State {
  Store::Impl* store = nullptr;
  Store::Impl::Slot slot;
  std::uint64_t reserve_ns = 0;  // time spent in Reserve, counted in the put latency
};

namespace {
std::uint64_t NsSince(std::chrono::steady_clock::time_point start) {
  return static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                        std::chrono::steady_clock::now() - start)
                                        .count());
}
}  // namespace

ReservedChunk::ReservedChunk() = default;
ReservedChunk::~ReservedChunk() { Abort(); }
ReservedChunk::ReservedChunk(ReservedChunk&& other) noexcept = default;

ReservedChunk& ReservedChunk::operator=(ReservedChunk&& other) noexcept {
  if (this != &other) {
    Abort();
    state_ = std::move(other.state_);
  }
  return *this;
}

std::byte* ReservedChunk::data() const {
  if (state_ == nullptr || state_->slot.already_stored) return nullptr;
  return state_->slot.slots.data.data;
}

std::size_t ReservedChunk::size() const {
  return state_ == nullptr || state_->slot.already_stored ? 0 : state_->slot.header.size;
}

bool ReservedChunk::already_stored() const {
  return state_ != nullptr && state_->slot.already_stored;
}

Status ReservedChunk::Commit(bool* published) {
  if (published != nullptr) *published = false;
  if (state_ == nullptr) return Status::InvalidArgument("commit of an empty reservation");
  std::unique_ptr<State> state = std::move(state_);
  if (state->slot.already_stored) return Status::Ok();
  const auto start = std::chrono::steady_clock::now();
  Store::Impl& im = *state->store;
  // No parts: the bytes are in the slot already; this writes the header (and persists both
  // when the tier persists).
  im.Mapped(state->slot.tier).Write(state->slot.slots, {}, state->slot.header);
  Status status = im.PublishSlot(state->slot, published);
  if (status.ok()) im.put_latency.Record(state->reserve_ns + NsSince(start));
  return status;
}

void ReservedChunk::Abort() {
  if (state_ == nullptr) return;
  std::unique_ptr<State> state = std::move(state_);
  if (!state->slot.already_stored) state->store->Mapped(state->slot.tier).FreeSlots(state->slot.slots);
}

Result<ReservedChunk> Store::Reserve(std::string_view key, std::size_t size,
                                     const ChunkMeta& meta) {
  const auto start = std::chrono::steady_clock::now();
  CXLKV_ASSIGN_OR_RETURN(Impl::Slot slot, impl_->ReserveSlot(key, size, meta));
  ReservedChunk r;
  r.state_ = std::make_unique<ReservedChunk::State>();
  r.state_->store = impl_.get();
  r.state_->slot = slot;
  r.state_->reserve_ns = NsSince(start);
  return r;
}

}  // namespace cxlkv
