"""Per-layer host -> device staging, one layer ahead, into two alternating device buffers.

Used where a layer's KV lives in host memory: the streamed question prefill (the conversation's full
KV) and decode layers whose slimmed KV did not fit the GPU budget. While layer i computes from one
buffer, layer i+1 is copied into the other on a side stream, so the copy hides behind the compute
when the compute is the longer of the two. On a CPU device the copies are plain synchronous copies
(same logic, no streams), which is what the CPU tests exercise.

    stager = LayerStager(sources, shapes=[(hkv, n + t, d)] * 2, device=dev)
    for i in range(len(sources)):
        k_buf, v_buf = stager.get(i)      # sources[i] copied into the leading corner of the buffers
"""
from collections.abc import Sequence

import torch


def copy_corner(dst: torch.Tensor, src: torch.Tensor, non_blocking: bool = False) -> None:
    """dst[:s0, :s1, ...] = src, one contiguous piece at a time.

    Host <-> device copies of a non-contiguous view (the first N rows of every head of a
    [Hkv, capacity, D] buffer) would go through a temporary, synchronously; per-head pieces are
    contiguous on both sides and stay asynchronous from pinned memory.

    A non-contiguous device source (transformers' K/V are transposed views [Hkv, t, D] of [t, Hkv, D]) is
    made contiguous first, on the device: split row by row instead, a 4096-token chunk became 16K copies
    of one row each, and a 240K-token prefill into host memory did not finish in 8 minutes on the H200.
    A host source (the first N rows of a pinned buffer) is split per head instead: a contiguous copy of
    it would be pageable, so its copy to the device would be synchronous.
    """
    if not src.is_contiguous() and src.device.type != "cpu":
        src = src.contiguous()   # one cheap kernel; the stream orders the temporary's reuse after the copy
    corner = dst[tuple(slice(0, s) for s in src.shape)]
    if src.dim() <= 1 or (src.is_contiguous() and corner.is_contiguous()):
        corner.copy_(src, non_blocking=non_blocking)
        return
    for j in range(src.shape[0]):
        copy_corner(dst[j], src[j], non_blocking)


class LayerStager:
    """Copies `sources[i]` (a tuple of host tensors) into device buffers of `shapes`.

    Args:
        sources: per item, host tensors; each is copied into the leading corner of the buffer of the
            same position (its shape must fit inside `shapes`).
        shapes: buffer shape per tensor position, large enough for every item.
        dtype, device: of the buffers.
        cyclic: after the last item prefetch the first again (decode steps visit layers in a loop).
    """

    def __init__(self, sources: Sequence[tuple[torch.Tensor, ...]], shapes: Sequence[tuple[int, ...]], *,
                 dtype: torch.dtype, device: torch.device, cyclic: bool = False):
        assert len(sources) > 0 and all(len(s) == len(shapes) for s in sources)
        for item in sources:
            for src, shape in zip(item, shapes):
                assert src.dim() == len(shape) and all(a <= b for a, b in zip(src.shape, shape)), \
                    f"source {tuple(src.shape)} does not fit the buffer {shape}"
        self.sources = list(sources)
        self.device = device
        self.cyclic = cyclic
        self.buffers = [tuple(torch.empty(shape, dtype=dtype, device=device) for shape in shapes) for _ in range(2)]
        self.copy_stream = torch.cuda.Stream(device) if device.type == "cuda" else None
        self._pending: dict[int, tuple[int, torch.cuda.Event | None]] = {}
        self._next_slot = 0

    @property
    def nbytes(self) -> int:
        return sum(t.numel() * t.element_size() for buf in self.buffers for t in buf)

    def _issue(self, i: int) -> None:
        slot, self._next_slot = self._next_slot, self._next_slot ^ 1
        buf = self.buffers[slot]
        event = None
        if self.copy_stream is None:
            for dst, src in zip(buf, self.sources[i]):
                copy_corner(dst, src)
        else:
            # The slot's previous user (the item before this one) is already enqueued on the compute
            # stream: the copy must not overwrite its buffer before it has run.
            self.copy_stream.wait_event(torch.cuda.current_stream(self.device).record_event())
            with torch.cuda.stream(self.copy_stream):
                for dst, src in zip(buf, self.sources[i]):
                    copy_corner(dst, src, non_blocking=True)
                    # a prefetch may still be in flight when the stager is dropped: the allocator
                    # must not hand this memory out before the copy stream is done with it
                    dst.record_stream(self.copy_stream)
                event = self.copy_stream.record_event()
        self._pending[i] = (slot, event)

    def get(self, i: int) -> tuple[torch.Tensor, ...]:
        """The device buffers holding item i (valid for work enqueued after this call, until get(i + 2))."""
        if i not in self._pending:
            self._issue(i)
        slot, event = self._pending.pop(i)
        if event is not None:
            torch.cuda.current_stream(self.device).wait_event(event)
        nxt = i + 1 if i + 1 < len(self.sources) else (0 if self.cyclic else None)
        if nxt is not None and nxt not in self._pending:
            self._issue(nxt)
        return self.buffers[slot]
