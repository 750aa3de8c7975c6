"""Training-aware OmniSparse: the sparse prefill's key-block selection inside the training forward.

The paper gets its prefill speed by fine-tuning with the sparsity in place. Here every decoder attention
call of the training forward first estimates, without gradients, which key blocks each (KV head, query
block) keeps, exactly as the engine's prefill would for the whole sequence in one chunk (the same
`SparseParams`: lazy rows, flat heads on dense rows, the shared budget, the dense fallback; text blocks
dense when `note_text_rows` was told where the text is), then attends to those keys only, so the
gradients flow through the kept keys only and the model learns to put its mass where the selection looks.

The kernel is torch's FlexAttention over a `BlockMask` built straight from the lists (listed blocks
full, the diagonal block causal), compiled once per process; its reference, and the CPU path
(FlexAttention has no CPU backward), is SDPA with the same keys as a boolean mask. At gamma = 1 every
causal block is kept and both equal dense causal attention, gradients included
(tests/train/test_sparse_training.py). Right-padded batches need no mask: causality already hides the
padding from every real row.

    install_sparse_training_attention(model, SparseParams(gamma=0.95))   # any Qwen2.5-VL-like model
    note_text_rows(model, input_ids == model.config.video_token_id)      # optional: text rows dense
    ... forward / backward as usual; model_density(model) -> kept share of the last forward
    remove_sparse_training_attention(model)
"""
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from omnivideo.kernels import use_triton
from omnivideo.kernels.sparse_prefill.reference import block_mask_reference
from omnivideo.kernels.sparse_prefill.sparse_plan import SparseParams

ATTN_NAME = "omnisparse_train"       # no "flash" in it: transformers would send it to its kernel hub
_compiled_flex = None


@dataclass
class SparseTrainingState:
    """What the attention calls of one model share: the params, the text rows of the current batch
    ([B, L] bool or None), and the kept share of each call of the last forward."""
    params: SparseParams
    text_rows: torch.Tensor | None = None
    densities: list = field(default_factory=list)
    previous_impl: str | None = None


def _plan(q: torch.Tensor, k: torch.Tensor, params: SparseParams, scale: float, text_rows) -> tuple:
    """(keep [Hkv, Mq, Mk] bool, kept share, the fallback fired) of one sequence q [Hq, L, d], k [Hkv, L, d]."""
    if use_triton(q.device, q.dtype):
        from omnivideo.kernels.sparse_prefill.estimate import estimate
        from omnivideo.kernels.sparse_prefill.sparse_plan import build_block_lists as build
    else:
        from omnivideo.kernels.sparse_prefill.reference import block_lists_reference as build
        from omnivideo.kernels.sparse_prefill.reference import estimate_reference as estimate
    B, L = params.block_size, q.shape[1]
    rows = None
    if text_rows is not None:
        pad = (-L) % B
        rows = torch.cat([text_rows, text_rows.new_zeros(pad)]).view(-1, B).any(1).to(q.device)
    est = estimate(q, k, q_offset=0, params=params, scale=scale)
    lists = build(est, q_offset=0, Nk=L, params=params, force_dense_rows=rows)
    return block_mask_reference(lists, -(-L // B)), lists.density, lists.dense


def _reference(query, key, value, keep, block: int, scale: float) -> torch.Tensor:
    """SDPA over the kept keys as a boolean mask: query [B, Hq, L, d], keep [B, Hkv, Mq, Mk]."""
    L, g = query.shape[2], query.shape[1] // key.shape[1]
    tokens = keep.repeat_interleave(block, 2)[:, :, :L].repeat_interleave(block, 3)[..., :L]
    causal = torch.ones(L, L, dtype=torch.bool, device=query.device).tril()
    mask = (tokens & causal).repeat_interleave(g, 1)
    return F.scaled_dot_product_attention(query, key, value, attn_mask=mask, scale=scale, enable_gqa=True)


def block_mask_from_keep(keep: torch.Tensor, groups: int, block: int, length: int):
    """FlexAttention BlockMask of keep [B, Hkv, Mq, Mk] bool: off-diagonal kept blocks full, the diagonal
    block partial with a causal mask_mod; KV heads expanded to their `groups` query heads."""
    from torch.nn.attention.flex_attention import BlockMask

    Mq, Mk = keep.shape[-2:]
    c = torch.arange(Mk, device=keep.device)
    bi = torch.arange(Mq, device=keep.device)
    full = keep & (c[None, :] < bi[:, None])
    full_idx = torch.argsort((~full).to(torch.int8), dim=-1, stable=True).to(torch.int32)   # kept blocks first
    full_num = full.sum(-1).to(torch.int32)
    part_idx = torch.zeros_like(full_idx)
    part_idx[..., 0] = bi.to(torch.int32)
    part_num = torch.ones_like(full_num)
    heads = [t.repeat_interleave(groups, 1).contiguous() for t in (part_num, part_idx, full_num, full_idx)]
    per_head = keep.repeat_interleave(groups, 1)

    def kept_and_causal(b, h, q, kv):
        # the compiled kernel calls this on the diagonal blocks only; the eager (unfused) path, on every
        # position, so it must carry the selection too
        return per_head[b, h, q // block, kv // block] & (q >= kv)

    return BlockMask.from_kv_blocks(*heads, BLOCK_SIZE=block, mask_mod=kept_and_causal, seq_lengths=(length, length))


def _flex(query, key, value, keep, block: int, scale: float) -> torch.Tensor:
    global _compiled_flex
    from torch.nn.attention.flex_attention import flex_attention

    if _compiled_flex is None:
        # default dynamism: the first new sequence length recompiles with dynamic shapes, later ones reuse it
        _compiled_flex = torch.compile(flex_attention)
    mask = block_mask_from_keep(keep, query.shape[1] // key.shape[1], block, query.shape[2])
    return _compiled_flex(query, key, value, block_mask=mask, scale=scale, enable_gqa=True)


def sparse_training_attention(module, query, key, value, attention_mask, scaling=None, dropout=0.0, **kwargs):
    """AttentionInterface entry: query [B, Hq, L, d], key/value [B, Hkv, L, d] -> ([B, L, Hq, d], None)."""
    state: SparseTrainingState = module._omni_sparse_training
    params, scale = state.params, scaling if scaling is not None else query.shape[-1] ** -0.5
    with torch.no_grad():
        plans = [_plan(query[b].detach(), key[b].detach(), params, scale,
                       None if state.text_rows is None else state.text_rows[b]) for b in range(query.shape[0])]
    state.densities.append(sum(d for _, d, _ in plans) / len(plans))
    if all(dense for _, _, dense in plans):      # the fallback fired everywhere: plain causal attention
        out = F.scaled_dot_product_attention(query, key, value, is_causal=True, scale=scale, enable_gqa=True)
    else:
        keep = torch.stack([k for k, _, _ in plans])
        attend = _flex if query.device.type == "cuda" else _reference
        out = attend(query, key, value, keep, params.block_size, scale)
    return out.transpose(1, 2).contiguous(), None


def _attention_modules(model):
    return [layer.self_attn for layer in model.model.language_model.layers]


def install_sparse_training_attention(model, params: SparseParams) -> SparseTrainingState:
    """Route `model`'s decoder attention through `sparse_training_attention` with `params` (the vision
    tower is left alone); returns the shared state. Idempotent: a second call replaces the params."""
    from transformers import AttentionInterface

    AttentionInterface.register(ATTN_NAME, sparse_training_attention)
    text_config = model.config.get_text_config()
    previous = getattr(model, "_omni_sparse_training", None)
    state = SparseTrainingState(params, previous_impl=previous.previous_impl if previous
                                else text_config._attn_implementation)
    model._omni_sparse_training = state
    for attn in _attention_modules(model):
        attn._omni_sparse_training = state
    model.set_attn_implementation({"text_config": ATTN_NAME})
    if text_config._attn_implementation != ATTN_NAME:    # a transformers that did not reach the sub-config
        text_config._attn_implementation_internal = ATTN_NAME
    assert text_config._attn_implementation == ATTN_NAME, text_config._attn_implementation
    return state


def remove_sparse_training_attention(model) -> None:
    """Undo `install_sparse_training_attention` (the previous attention implementation comes back)."""
    state = getattr(model, "_omni_sparse_training", None)
    if state is None:
        return
    model.set_attn_implementation({"text_config": state.previous_impl or "sdpa"})
    for attn in _attention_modules(model):
        del attn._omni_sparse_training
    del model._omni_sparse_training


def note_text_rows(model, is_text: torch.Tensor) -> None:
    """Text positions [B, L] bool of the next forward (their query blocks stay dense); a no-op when the
    sparse training attention is not installed."""
    state = getattr(model, "_omni_sparse_training", None)
    if state is not None:
        state.text_rows = is_text
        state.densities.clear()


def model_density(model) -> float | None:
    """Mean kept share of causal blocks over the attention calls since the last `note_text_rows` (None: none)."""
    state = getattr(model, "_omni_sparse_training", None)
    return sum(state.densities) / len(state.densities) if state and state.densities else None
