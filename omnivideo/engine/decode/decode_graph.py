"""One decode step with static buffers, captured as a CUDA graph and replayed per token.

A 7B decode step is about 28 x 25 small kernels; launched one by one from Python it is bound by
launch latency, not by memory bandwidth. `DecodeStep` keeps everything a step touches at fixed
addresses: the input token [1, 1] and position [3, 1, 1] as device tensors written before each
replay, the KV in `SlimKV` (packed rows + tails whose lengths live on the device), and the logits
output. The step is embed -> every decoder layer (the model's own modules, our attention through
the `omni_plan` kwarg; residual adds fused into the norms) -> final norm -> lm_head. On CPU, or when a layer's KV is staged from host
memory, the same step runs eagerly.

NF4 weights: bitsandbytes >= 0.50 runs a batch-1 `Linear4bit` as one fused `cgemm_4bit_*` kernel on
the current stream (`torch._C._cuda_getCurrentRawStream`), with its output from the torch allocator
and no host sync, so it is captured like any torch op (checked by the GPU tests).

    step = DecodeStep(engine, slim_kv, use_graph=True)
    logits = step(token, position)     # token: 0-d/[1] int64 on the device; logits [V] (static buffer)
"""
import logging

import torch

from omnivideo.engine.attention import AttentionPlan
from omnivideo.engine.decode.fused_stack import fused_decoder_stack
from omnivideo.engine.stack import decoder_stack

log = logging.getLogger(__name__)


class DecodeStep:
    """A decode step over `slim` (omnivideo.engine.decode.slim_kv.SlimKV) with static inputs and outputs.

    use_graph: capture a CUDA graph (only on CUDA and when no layer is staged from host memory).
    fused_layers: residual adds fused into the norms (`omnivideo.engine.decode.fused_stack`; the same numbers).
    """

    def __init__(self, engine, slim, use_graph: bool = True, fused_layers: bool = True):
        self.engine = engine
        self.slim = slim
        self._stack = fused_decoder_stack if fused_layers else decoder_stack
        device = engine.device
        self.token = torch.zeros(1, 1, dtype=torch.long, device=device)
        self.position = torch.zeros(3, 1, 1, dtype=torch.long, device=device)
        self.plan = AttentionPlan(sparse=slim.attention)
        self.logits: torch.Tensor | None = None
        self.graph: torch.cuda.CUDAGraph | None = None
        if use_graph and device.type == "cuda":
            if slim.graph_safe:
                self._capture()
            else:
                log.info("decode step runs eagerly: %d layers are staged from host memory", len(slim.offloaded))

    def _forward(self) -> torch.Tensor:
        """[V] logits of the token in `self.token` at `self.position`; appends its K/V to the tails."""
        hidden = self.engine.embed(self.token)
        hidden = self._stack(self.engine.lm, hidden, self.position, lambda i: self.slim, self.plan)
        return self.engine.lm_head(hidden[:, -1])[0]

    def _capture(self) -> None:
        # Warm-up on a side stream first: Triton compiles its kernels and cuBLAS / bitsandbytes set
        # up their state at the first call, which must not happen inside the capture.
        stream = torch.cuda.Stream(self.engine.device)
        stream.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(stream):
            for _ in range(2):
                self._forward()
        torch.cuda.current_stream().wait_stream(stream)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            self.logits = self._forward()
        self.graph = graph
        # the warm-up steps appended two rows of garbage to every tail (capture itself runs nothing)
        self.slim.reset_tails()

    def __call__(self, token: torch.Tensor, position: int) -> torch.Tensor:
        """Feed `token` (int64, 1 element, on the device) at text position `position`; returns [V].

        With a graph the result is the static `self.logits` buffer: read it before the next call.
        """
        self.token.copy_(token.reshape(1, 1))
        self.position.fill_(position)
        if self.graph is None:
            return self._forward()
        self.graph.replay()
        return self.logits
