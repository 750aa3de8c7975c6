"""Mechanism 3 in the engine: decode each question over a per-KV-head slimmed copy of the KV.

generate_slim (what `Engine.generate` runs when the engine has a `SlimDecodeConfig`):
1. question prefill, dense and exact over the conversation's full KV (on the device, or streamed
   layer by layer from host memory, see `omnivideo.engine.prefill.question_prefill`). In every layer the `observe`
   hook (`SlimSelector`) takes the softmax attention of the last `observe` prompt rows over all
   keys (fp32, in key chunks), picks per KV head the visual tokens covering `gamma_decode` of its
   visual mass (`omnivideo.kernels.decode.kv_slimming.select_slim_tokens`; text, sinks and question always kept) and
   packs them (`pack_kv`) on the GPU, or in host memory past `gpu_kv_budget_gb`; with gamma_decode
   = 1 over a cache already on the device nothing is packed: `alias_kv` reads the cache in place;
2. decode over packed + a `DecodeTail` of generated tokens (`omnivideo.engine.decode.slim_kv.SlimKV`), one static
   step replayed per token (`omnivideo.engine.decode.decode_graph.DecodeStep`, CUDA graph on a GPU).
The full KV stays in the conversation: generated tokens are not written to it but kept in
`conv.pending`, so the next turn prefills them densely with its question and re-selects.
gamma_decode = 1 keeps every token: dense decoding through the same path.

    engine = Engine(loaded, EngineConfig(), slim_decode=SlimDecodeConfig(gamma_decode=0.95))
    for token in engine.generate(conv, question_ids, SamplingParams(), stop_ids): ...
"""
import time
from dataclasses import dataclass

import torch

from omnivideo.engine.attention import AttentionPlan
from omnivideo.engine.decode.decode_graph import DecodeStep
from omnivideo.engine.decode.device_budget import packed_kv_budget
from omnivideo.engine.host_kv_cache import is_host_cache
from omnivideo.engine.decode.slim_kv import SlimKV
from omnivideo.engine.sampling import sample_next_token
from omnivideo.kernels.decode.kv_slimming import PackedKV, SlimParams, alias_kv, keep_all, pack_kv, select_slim_tokens
from omnivideo.errors import ConfigError


@dataclass(frozen=True, slots=True)
class SlimDecodeConfig:
    """observe: prompt rows whose attention selects the KV; gamma_decode: share of each KV head's
    visual mass kept (1 = dense); min_tokens: per-head floor of kept visual tokens; pool: score
    smoothing along the visual tokens (odd); cuda_graphs: capture the decode step on CUDA;
    gpu_kv_budget_gb: packed KV beyond this stays in host memory and is staged per step (None = all
    on the GPU); observe_chunk: keys per chunk of the fp32 observation attention; fused_layers: the
    step's residual adds fused into the norms (omnivideo.engine.decode.fused_stack, the same numbers)."""
    observe: int = 32
    gamma_decode: float = 0.95
    min_tokens: int = 256
    pool: int = 3
    cuda_graphs: bool = True
    gpu_kv_budget_gb: float | None = None
    observe_chunk: int = 8192
    fused_layers: bool = True

    def __post_init__(self):
        if self.observe < 1:
            raise ConfigError(f"observe must be >= 1, got {self.observe}")
        if self.gpu_kv_budget_gb is not None and self.gpu_kv_budget_gb < 0:
            raise ConfigError(f"gpu_kv_budget_gb must be >= 0, got {self.gpu_kv_budget_gb}")
        if self.observe_chunk < 64:
            raise ConfigError(f"observe_chunk must be >= 64, got {self.observe_chunk}")
        try:  # gamma_decode, min_tokens, pool: the kernel's own checks, as a user-facing error
            self.params
        except ValueError as e:
            raise ConfigError(str(e)) from e

    @property
    def params(self) -> SlimParams:
        return SlimParams(gamma_decode=self.gamma_decode, min_tokens=self.min_tokens, pool=self.pool)


def observed_attention(q_obs: torch.Tensor, k: torch.Tensor, scale: float, chunk: int = 8192) -> torch.Tensor:
    """Softmax attention of the last T prompt rows, summed over the rows, in fp32.

    Args:
        q_obs: [Hq, T, D], the queries of the last T of the N positions (row t sits at N - T + t).
        k: [Hkv, N, D]; query head h reads KV head h // (Hq / Hkv).
    Returns:
        [Hq, N] float32: sum over t of softmax_keys(q_t . k * scale) with the causal mask.
    Two passes over key chunks (log-sum-exp, then probabilities) keep the memory at
    [Hq, T, chunk] instead of [Hq, T, N] (1.9 GB per layer at 128K keys, T = 32, Hq = 28).
    """
    hq, t, d = q_obs.shape
    hkv, n, _ = k.shape
    g = hq // hkv
    q = (q_obs.float() * scale).reshape(hkv, g * t, d)  # rows (group member, t) per KV head
    row_pos = (n - t + torch.arange(t, device=k.device)).repeat(g)  # [g*t]
    first_masked = n - t + 1  # keys before this are visible to every observed row

    def logits(c0: int, c1: int) -> torch.Tensor:  # [Hkv, g*t, c1-c0]
        s = q @ k[:, c0:c1].float().transpose(1, 2)
        if c1 > first_masked:
            future = torch.arange(c0, c1, device=k.device)[None, :] > row_pos[:, None]
            s.masked_fill_(future, float("-inf"))
        return s

    lse = torch.full((hkv, g * t), float("-inf"), device=k.device)
    for c0 in range(0, n, chunk):
        lse = torch.logaddexp(lse, torch.logsumexp(logits(c0, min(n, c0 + chunk)), dim=-1))
    out = torch.empty(hq, n, dtype=torch.float32, device=k.device)
    for c0 in range(0, n, chunk):
        c1 = min(n, c0 + chunk)
        p = torch.exp(logits(c0, c1) - lse[..., None])  # [Hkv, g*t, c]
        out[:, c0:c1] = p.view(hkv, g, t, c1 - c0).sum(dim=2).reshape(hq, c1 - c0)
    return out


def _buffer_view(x: torch.Tensor) -> tuple[torch.Tensor, int]:
    """x [Hkv, N, D], a view of the first N rows of a contiguous [Hkv, capacity, D] buffer (our
    caches), -> (the [Hkv, capacity, D] buffer, N). `pack_kv` flattens its input; on the buffer that
    is a view, on x it would copy the whole layer first."""
    hkv, n, d = x.shape
    if x.is_contiguous():
        return x, n
    assert x.stride(2) == 1 and x.stride(1) == d and x.stride(0) % d == 0, f"unexpected KV layout {x.stride()}"
    return x.as_strided((hkv, x.stride(0) // d, d), x.stride()), n


class SlimSelector:
    """`AttentionPlan.observe` callable of the question prefill: per layer, select, pack, place.

    Args:
        visual_mask: [N] bool over every key of the prefill (prefix + earlier turns + this prompt).
        budget_bytes: packed bytes allowed on `device`; layers past it are packed into host memory.
        alias: the K/V handed to the hook are the conversation cache's own buffers, which stay put while
            the answer is decoded, so gamma_decode = 1 may read them in place (`alias_kv`). False for a
            streamed prefill: there they are staging buffers that the next layers overwrite.
    """

    def __init__(self, config: SlimDecodeConfig, visual_mask: torch.Tensor, num_kv_heads: int,
                 device: torch.device, budget_bytes: int | None = None, alias: bool = False):
        self.config = config
        self.alias = alias
        self.params = config.params
        self.visual_mask = visual_mask
        self.num_kv_heads = num_kv_heads
        self.device = device
        self.budget_bytes = budget_bytes
        self.packed: dict[int, PackedKV] = {}
        self.offloaded: set[int] = set()
        self.device_bytes = 0
        self.total_bytes = 0
        self.kept_visual: dict[int, list[int]] = {}

    def __call__(self, module, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, scale: float) -> None:
        """query [1, Hq, Tq, D]; key/value [1, Hkv, N, D] (all keys, this prompt's included)."""
        layer = module.layer_idx
        k, n = _buffer_view(key[0])
        v, _ = _buffer_view(value[0])
        assert self.visual_mask.shape == (n,), f"visual mask for {self.visual_mask.numel()} keys, layer has {n}"
        if self.config.gamma_decode >= 1.0:
            keep = keep_all(self.num_kv_heads, n, k.device)
        else:
            t = min(self.config.observe, query.shape[2])
            scores = observed_attention(query[0, :, -t:], key[0], scale, self.config.observe_chunk)  # [Hq, N]
            # select_slim_tokens sums its [Hq, T_obs, N] input over T_obs first: the row sum is the same input.
            keep = select_slim_tokens(scores[:, None], self.visual_mask, self.params, num_kv_heads=self.num_kv_heads)
        lengths = [int(idx.numel()) for idx in keep]
        nbytes = 2 * sum(lengths) * k.shape[2] * k.element_size()
        n_other = n - int(self.visual_mask.sum())
        self.kept_visual[layer] = [length - n_other for length in lengths]
        self.total_bytes += nbytes
        if self.alias and self.config.gamma_decode >= 1.0 and _same_device(k.device, self.device) \
                and k.is_contiguous() and v.is_contiguous():
            # every row kept and the cache already on the device: decode reads the cache in place
            # instead of a second copy of the whole KV (the conversation keeps its KV either way)
            self.packed[layer] = alias_kv(k, v, n)
        elif self.budget_bytes is None or self.device_bytes + nbytes <= self.budget_bytes:
            self.packed[layer] = pack_kv(k, v, keep, device=self.device)
            self.device_bytes += nbytes
        else:
            self.packed[layer] = pack_kv(k, v, keep, out=_host_packed(sum(lengths), k, len(keep)))
            self.offloaded.add(layer)

    def summary(self, num_visual: int) -> dict:
        kept = [x for heads in self.kept_visual.values() for x in heads]
        share = sum(kept) / (len(kept) * num_visual) if kept and num_visual else 1.0
        return {"kept_visual_share": round(share, 4), "visual_tokens": num_visual,
                "offloaded_layers": sorted(self.offloaded), "packed_bytes": self.total_bytes,
                "device_packed_bytes": self.device_bytes,
                "kept_visual_per_layer": {str(k): v for k, v in sorted(self.kept_visual.items())}}


def _same_device(a: torch.device, b: torch.device) -> bool:
    return a.type == b.type and (a.index is None or b.index is None or a.index == b.index)


def _host_packed(total: int, like: torch.Tensor, hkv: int) -> PackedKV:
    """Empty PackedKV in host memory (pinned when CUDA exists, so per-step staging is asynchronous)."""
    pin = torch.cuda.is_available()
    d = like.shape[-1]
    return PackedKV(k=torch.empty(total, d, dtype=like.dtype, pin_memory=pin),
                    v=torch.empty(total, d, dtype=like.dtype, pin_memory=pin),
                    offsets=torch.zeros(hkv + 1, dtype=torch.int32), lengths=(0,) * hkv)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def generate_slim(engine, conv, new_ids: list[int], params, stop_ids: list[int]):
    """`Engine.generate` with mechanism 3 (see the module docstring). Yields token ids; the stop token
    is yielded but not kept. `conv.pending` always holds the tokens generated so far (set before each
    yield), so a caller that stops iterating leaves the conversation consistent."""
    cfg: SlimDecodeConfig = engine.slim_decode
    device = engine.device
    gen = params.generator(device)
    t0 = time.perf_counter()
    fed = conv.pending + list(new_ids)
    conv.pending = []
    visual = torch.tensor(conv.ids + fed, device=device) == engine.video_pad_id
    budget = None if cfg.gpu_kv_budget_gb is None else int(cfg.gpu_kv_budget_gb * 2 ** 30)
    if budget is None:   # what fits next to the weights: past it, layers are packed in host memory
        tc = engine.loaded.text_config
        _, hkv, head_dim = engine.loaded.family.kv_shape(tc)
        layer_bytes = 2 * hkv * len(visual) * head_dim * engine.loaded.dtype.itemsize
        budget = packed_kv_budget(device, layer_bytes, tc.num_attention_heads // hkv,
                                  staged_prefill=is_host_cache(conv.cache))
    selector = SlimSelector(cfg, visual, engine.loaded.text_config.num_key_value_heads, device, budget,
                            alias=not is_host_cache(conv.cache))
    base = engine.plan_factory("text")
    plan = AttentionPlan(sparse=base.sparse if base is not None else None,
                         observe=_chain(base.observe if base is not None else None, selector))
    logits = engine.forward_text(conv, fed, "text", plan=plan)
    _sync(device)  # host-placed packs were copied asynchronously; the stager reads them next
    conv.stats["slim"] = selector.summary(int(visual.sum()))
    conv.stats["slim"]["select_prefill_s"] = round(time.perf_counter() - t0, 4)
    stops, generated, step = set(stop_ids), [], None

    def enqueue(token: "_HostToken", i: int) -> "_HostToken":
        """Launch the step that feeds token i; its sampled successor, copy to the host started."""
        return _HostToken(sample_next_token(step(token.device, conv.length + i + conv.rope_delta), params, gen))

    token_t = _HostToken(sample_next_token(logits, params, gen))
    for i in range(params.max_new_tokens):
        last = i == params.max_new_tokens - 1
        next_t = None
        if step is not None and not last:
            # enqueue the next step before reading this token: the device computes token i + 1 while the
            # host streams token i, so no host round trip sits between two steps. After a stop token that
            # step is wasted work, nothing else (its tail row is never read; the RNG order is unchanged).
            next_t = enqueue(token_t, i)
        token = token_t.value()
        if i == 0:
            conv.stats["ttft_s"] = time.perf_counter() - t0
        conv.pending = list(generated) if token in stops else generated + [token]
        yield token
        if token in stops or last:
            return
        generated.append(token)
        if step is None:  # built after the first token is out, so the capture is not in the TTFT
            slim = SlimKV([selector.packed[layer] for layer in range(engine.num_layers)],
                          offloaded=selector.offloaded, tail_capacity=params.max_new_tokens,
                          device=device, dtype=selector.packed[0].k.dtype)
            step = DecodeStep(engine, slim, use_graph=cfg.cuda_graphs, fused_layers=cfg.fused_layers)
            conv.stats["slim"].update(graph=step.graph is not None, decode_device_bytes=slim.device_bytes())
            next_t = enqueue(token_t, i)
        token_t = next_t


class _HostToken:
    """A sampled token (0-d int64 on the device) with its copy to the host started at once, so reading
    it later waits for the step that produced it and not for steps enqueued after it."""

    def __init__(self, token: torch.Tensor):
        self.device = token
        if token.device.type == "cuda":
            self._host = torch.empty((), dtype=token.dtype, pin_memory=True)
            self._host.copy_(token, non_blocking=True)
            self._ready = torch.cuda.Event()
            self._ready.record()
        else:
            self._host, self._ready = token, None

    def value(self) -> int:
        if self._ready is not None:
            self._ready.synchronize()
        return int(self._host)


def _chain(first, second):
    if first is None:
        return second

    def both(*args):
        first(*args)
        second(*args)
    return both

