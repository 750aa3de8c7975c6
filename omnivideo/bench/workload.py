"""Synthetic Q/K/V with the structure of video attention, for kernel benchmarks and fidelity checks.

    q, k, v = structured_qk(frames=128, patches_per_frame=256, hq=28, hkv=4, d=128, seed=0)

Random-weight models give nearly flat attention, so they only exercise the dense fallback; this
generator gives the sparse path something shaped like a real long-video prompt instead. Every
number below is a stated assumption, not a fit to the kernel; `docs/kernels.md` reports the recall
measured on it, and Q/K captured from a real checkpoint (`launcher.py bench capture`) is the check
that matters.

Assumptions:
- Layout: `prefix_tokens` text tokens (system prompt), then `frames` frame groups of
  `patches_per_frame` visual tokens each, patches row-major on a near-square grid (Qwen2.5-VL:
  one frame group = 2 frames merged, 256 tokens at 448x448).
- A logit is a sum of head-weighted similarities, built into q.k (so `scale = d ** -0.5` applies):
  temporal (same patch grid in nearby frames: a multi-frequency cosine code of the frame index,
  periods 4 to 128 frames, like the temporal part of M-RoPE), spatial (same for the patch row and
  column, periods 4 grid cells to the grid width), content (semantic matches) and sink.
- Content: each frame has 4 regions (quadrants); each region shows one object for a scene of
  `scene_frames` frames, then a new object is drawn from a pool of `objects`; objects recur across
  the video, which gives a few long-range matches. A token's content vector is its object's vector
  plus equal-norm noise (patches of one object are similar, not identical).
- Sinks: the first `sink_tokens` tokens carry a sink feature that every query weights by 6 to 10
  logits (attention sinks take a large share of many LLM heads' mass; StreamingLLM).
- Heads: each query head draws a type: local (1/2: strong temporal and spatial weights), semantic
  (1/4: strong content weight, weak position) or flat (1/4: position and content weights x 0.2,
  attention spreads over the sinks and the whole past). Weights are uniform in stated ranges; each head adds iid noise with about
  unit logit standard deviation. GQA: the query heads of one KV head share its keys and differ only
  in their weights; each KV head has its own key noise and a random rotation (which leaves q.k
  unchanged and makes the features not axis-aligned).
- Values are iid normal: output error then measures how much attention mass moved.
"""
import math

import torch

HEAD_TYPES = ("local", "semantic", "flat")
# (temporal, spatial, content, sink) weight ranges per head type; flat = local ranges with the
# position and content weights x 0.2 (the sink weight kept: broad heads of LLMs still sink)
_WEIGHT_RANGES = {
    "local": ((4.0, 8.0), (3.0, 6.0), (1.0, 3.0), (6.0, 10.0)),
    "semantic": ((1.0, 3.0), (0.0, 1.0), (4.0, 7.0), (6.0, 10.0)),
}
_FLAT_SCALE = torch.tensor([0.2, 0.2, 0.2, 1.0])


def _cos_code(pos: torch.Tensor, dims: int, min_period: float, max_period: float) -> torch.Tensor:
    """[N] positions -> [N, dims] unit vectors with code(a) . code(b) = mean_j cos(w_j (a - b))."""
    n_freq = dims // 2
    periods = torch.logspace(math.log10(min_period), math.log10(max_period), n_freq, dtype=torch.float64)
    ang = pos.double()[:, None] * (2 * math.pi / periods)[None, :]
    return (torch.cat([ang.cos(), ang.sin()], 1) / math.sqrt(n_freq)).float()


def _feature_dims(d: int) -> dict:
    assert d >= 32 and d % 16 == 0, f"head_dim must be a multiple of 16, >= 32, got {d}"
    dims = {"time": d // 8, "x": d // 16, "y": d // 16, "content": d // 2, "sink": 1}
    dims["noise"] = d - sum(dims.values())
    return dims


def _token_features(frames: int, patches: int, prefix: int, d: int, scene_frames: int, objects: int,
                    sink_tokens: int, gen: torch.Generator) -> dict:
    """Key-side features of every token: {name: [N, dims]}; text tokens have no position code."""
    dims = _feature_dims(d)
    grid_w = max(1, round(math.sqrt(patches)))
    n_vis = frames * patches
    f = torch.arange(n_vis) // patches
    x, y = torch.arange(n_vis) % patches % grid_w, torch.arange(n_vis) % patches // grid_w
    region = (x >= grid_w / 2).long() + 2 * (y >= (patches / grid_w) / 2).long()
    n_scenes = -(-frames // scene_frames)
    scene_obj = torch.randint(0, objects, (n_scenes, 4), generator=gen)
    obj_vec = torch.nn.functional.normalize(torch.randn(objects, dims["content"], generator=gen), dim=1)
    obj = scene_obj[f // scene_frames, region]
    content = obj_vec[obj] + torch.randn(n_vis, dims["content"], generator=gen) / math.sqrt(dims["content"])
    text_content = torch.randn(prefix, dims["content"], generator=gen) / math.sqrt(dims["content"])
    zeros = lambda n, k: torch.zeros(n, k)  # noqa: E731
    sink = torch.zeros(prefix + n_vis, 1)
    sink[:min(sink_tokens, prefix + n_vis)] = 1.0
    return {
        "time": torch.cat([zeros(prefix, dims["time"]), _cos_code(f, dims["time"], 4, 128)]),
        "x": torch.cat([zeros(prefix, dims["x"]), _cos_code(x, dims["x"], 4, max(4, grid_w))]),
        "y": torch.cat([zeros(prefix, dims["y"]), _cos_code(y, dims["y"], 4, max(4, grid_w))]),
        "content": torch.nn.functional.normalize(torch.cat([text_content, content]), dim=1),
        "sink": sink,
    }


def head_weights(hq: int, seed: int) -> tuple[list[str], torch.Tensor]:
    """Per query head of layer `seed`: its type and weights [hq, 4] = (temporal, spatial, content, sink)."""
    gen = torch.Generator().manual_seed(seed + 7919)      # own stream: inspectable without the features
    kinds, rows = [], []
    for _ in range(hq):
        u = torch.rand((), generator=gen).item()
        kind = "local" if u < 0.5 else "semantic" if u < 0.75 else "flat"
        ranges = _WEIGHT_RANGES["local" if kind == "flat" else kind]
        w = torch.tensor([lo + (hi - lo) * torch.rand((), generator=gen).item() for lo, hi in ranges])
        kinds.append(kind)
        rows.append(w * _FLAT_SCALE if kind == "flat" else w)
    return kinds, torch.stack(rows)


def structured_qk(frames: int, patches_per_frame: int, hq: int, hkv: int, d: int, seed: int, *,
                  prefix_tokens: int = 16, sink_tokens: int = 4, scene_frames: int = 8, objects: int = 64,
                  dtype: torch.dtype = torch.float32, device: str | torch.device = "cpu"):
    """Q/K/V of one attention layer over a synthetic video prompt (assumptions: module docstring).

    Returns q [hq, N, d], k [hkv, N, d], v [hkv, N, d] in `dtype` on `device`, with
    N = prefix_tokens + frames * patches_per_frame; logits are q.k * d ** -0.5. `seed` fixes
    everything (use one seed per simulated layer)."""
    assert hq % hkv == 0, f"hq {hq} must be a multiple of hkv {hkv}"
    gen = torch.Generator().manual_seed(seed)
    feats = _token_features(frames, patches_per_frame, prefix_tokens, d, scene_frames, objects,
                            sink_tokens, gen)
    dims = _feature_dims(d)
    n = feats["sink"].shape[0]
    _, w = head_weights(hq, seed)
    g = hq // hkv
    q = torch.empty(hq, n, d)
    k = torch.empty(hkv, n, d)
    for u in range(hkv):
        rot = torch.linalg.qr(torch.randn(d, d, generator=gen))[0]
        key_noise = torch.randn(n, dims["noise"], generator=gen)
        k[u] = torch.cat([feats["time"], feats["x"], feats["y"], feats["content"], feats["sink"], key_noise], 1) @ rot
        for h in range(u * g, (u + 1) * g):
            wt, ws, wc, w0 = w[h].tolist()
            q_noise = torch.randn(n, dims["noise"], generator=gen) / math.sqrt(dims["noise"])
            qh = torch.cat([wt * feats["time"], ws * feats["x"], ws * feats["y"], wc * feats["content"],
                            torch.full((n, 1), w0), q_noise], 1)
            q[h] = qh @ rot * math.sqrt(d)          # undo the 1/sqrt(d) softmax scale
    v = torch.randn(hkv, n, d, generator=gen)
    return tuple(t.to(device=device, dtype=dtype) for t in (q, k, v))
