"""Pure-PyTorch definitions of decode attention over a per-head slimmed KV, and of the slimming selection.

These are the specs: `omnivideo.kernels.decode.decode_attention.decode_attention` and `omnivideo.kernels.decode.kv_slimming.select_slim_tokens`
are tested against them. Written for clarity (fp32/fp64, loops over heads), not speed.
"""
import torch


def tail_append_reference(k_new: torch.Tensor, v_new: torch.Tensor, k_buf: torch.Tensor, v_buf: torch.Tensor,
                          length: torch.Tensor) -> None:
    """Append t tokens to a decode tail in place: rows length..length+t-1 of k_buf/v_buf [Hkv, capacity, d]
    get k_new/v_new [Hkv, t, d] (cast to the buffers' dtype); length ([1] int32) grows by t. Rows past
    the capacity are not written and the length stops at the capacity."""
    n0, t, cap = int(length.reshape(-1)[0]), k_new.shape[1], k_buf.shape[1]
    fit = max(0, min(t, cap - n0))
    k_buf[:, n0:n0 + fit] = k_new[:, :fit].to(k_buf.dtype)
    v_buf[:, n0:n0 + fit] = v_new[:, :fit].to(v_buf.dtype)
    length.fill_(min(n0 + t, cap))


def decode_attention_reference(q: torch.Tensor, packed, tail, *, scale: float) -> torch.Tensor:
    """One query token per head attending to its KV head's packed rows plus the shared dense tail.

    Args:
        q: [Hq, d]; query head h belongs to KV head h // g, g = Hq / Hkv.
        packed: PackedKV: k, v [capacity, d], offsets [Hkv + 1] (head u owns rows offsets[u]:offsets[u+1],
            or offsets[u]:ends[u] when `ends` is set).
        tail: DecodeTail (or None): k, v [Hkv, capacity, d] of generated tokens, length [1] valid rows.
        scale: softmax scale (usually d ** -0.5).
    Returns:
        [Hq, d] in q's dtype. A head with no keys at all (0 packed rows, empty tail) returns zeros.
    """
    hq, d = q.shape
    offsets = packed.offsets.tolist()
    ends = packed.head_ends.tolist()
    hkv = len(offsets) - 1
    group = hq // hkv
    tail_len = 0 if tail is None else int(tail.length.reshape(-1)[0])
    out = torch.zeros(hq, d, dtype=torch.float32, device=q.device)
    for u in range(hkv):
        keys = [packed.k[offsets[u]:ends[u]]]
        values = [packed.v[offsets[u]:ends[u]]]
        if tail_len:
            keys.append(tail.k[u, :tail_len])
            values.append(tail.v[u, :tail_len])
        k_u = torch.cat(keys).float()  # [L_u, d]
        v_u = torch.cat(values).float()
        if k_u.shape[0] == 0:
            continue
        q_g = q[u * group:(u + 1) * group].float()  # [g, d]
        probs = torch.softmax(q_g @ k_u.T * scale, dim=-1)  # [g, L_u]
        out[u * group:(u + 1) * group] = probs @ v_u
    return out.to(q.dtype)


def select_slim_tokens_reference(obs_attn: torch.Tensor, visual_mask: torch.Tensor, params,
                                 *, num_kv_heads: int | None = None) -> list[torch.Tensor]:
    """Greedy, loop-by-loop definition of the per-KV-head selection.

    Args:
        obs_attn: [Hq, T_obs, N] softmax attention of the observation rows over the N keys.
        visual_mask: [N] bool.
        params: SlimParams (gamma_decode, min_tokens, pool).
        num_kv_heads: Hkv (None = Hq).
    Returns:
        Hkv sorted int64 index tensors: all non-visual positions plus, per head, the visual tokens taken
        in descending pooled score (ties: lower visual rank first) until their pooled mass reaches
        gamma_decode of the head's total pooled visual mass, and at least min(min_tokens, V) of them.
        gamma_decode = 1 takes every visual token.
    """
    hq, _, n = obs_attn.shape
    hkv = num_kv_heads or hq
    group = hq // hkv
    positions = [i for i in range(n) if visual_mask[i]]
    others = [i for i in range(n) if not visual_mask[i]]
    n_vis = len(positions)
    half = params.pool // 2
    keep = []
    for u in range(hkv):
        raw = obs_attn[u * group:(u + 1) * group].double().sum(dim=(0, 1))[positions].tolist()
        pooled = []
        for j in range(n_vis):  # mean over the neighbours that exist
            window = raw[max(0, j - half):min(n_vis, j + half + 1)]
            pooled.append(sum(window) / len(window))
        ranked = sorted(range(n_vis), key=lambda j: (-pooled[j], j))
        total = sum(pooled[j] for j in ranked)
        chosen, mass = [], 0.0
        for j in ranked:
            if params.gamma_decode < 1.0 and mass >= params.gamma_decode * total \
                    and len(chosen) >= min(params.min_tokens, n_vis):
                break
            chosen.append(j)
            mass += pooled[j]
        keep.append(torch.tensor(sorted(others + [positions[j] for j in chosen]), dtype=torch.long))
    return keep
