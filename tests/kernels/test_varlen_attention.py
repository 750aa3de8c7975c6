"""Triton `varlen_attention` against its PyTorch reference, and the reference against dense SDPA."""
import pytest
import torch

from conftest import DEVICE, assert_close
from omnivideo.kernels.varlen.reference import varlen_attention_reference
from omnivideo.kernels.varlen.varlen_attention import varlen_attention, work_table

DTYPES = [torch.float32, torch.float16, pytest.param(torch.bfloat16, marks=pytest.mark.gpu)]
TOL = {torch.float32: 1e-5, torch.float16: 2e-3, torch.bfloat16: 1e-2}
# Segment lengths: single tokens, a 64-token window beside cut edge windows, non-multiples of every
# tile, empty segments (transformers' window lists can hold repeated boundaries), one long segment.
LAYOUTS = {
    "one_token": [1],
    "singles": [1, 1, 1],
    "windows": [64, 16, 64, 40, 8],
    "ragged": [70, 1, 130, 3, 0, 33],
    "empty_ends": [0, 17, 0, 0, 129, 0],
    "long": [300],
}


def _cu(lengths: list[int]) -> torch.Tensor:
    return torch.tensor([0] + lengths, device=DEVICE).cumsum(0).to(torch.int32)


def _qkv(n: int, h: int, d: int, dtype: torch.dtype, seed: int = 0):
    """q, k, v [N, H, D] as transformers hands them: strided views of one fused [N, 3, H, D] projection."""
    gen = torch.Generator(device=DEVICE).manual_seed(seed)
    qkv = torch.randn(n, 3, h, d, device=DEVICE, generator=gen).to(dtype)
    return qkv.unbind(1)


def _block_diagonal_sdpa(q, k, v, cu, scale):
    """Dense fp32 SDPA over all N tokens with a block-diagonal mask (the reference's anchor)."""
    n = q.shape[0]
    seg = torch.repeat_interleave(torch.arange(cu.numel() - 1, device=q.device), (cu[1:] - cu[:-1]).long())
    mask = seg[:, None] == seg[None, :]
    qf, kf, vf = (x.float().transpose(0, 1) for x in (q, k, v))
    out = torch.nn.functional.scaled_dot_product_attention(qf, kf, vf, attn_mask=mask, scale=scale)
    s = (qf @ kf.transpose(1, 2) * scale).masked_fill(~mask, float("-inf"))
    assert out.shape == (q.shape[1], n, q.shape[2])
    return out.transpose(0, 1), torch.logsumexp(s, -1)


@pytest.mark.parametrize("layout", LAYOUTS, ids=str)
def test_reference_equals_block_diagonal_sdpa(layout):
    cu = _cu(LAYOUTS[layout])
    q, k, v = _qkv(int(cu[-1]), 2, 24, torch.float32)
    out, lse = varlen_attention_reference(q, k, v, cu, scale=0.3, return_lse=True)
    ref_out, ref_lse = _block_diagonal_sdpa(q, k, v, cu, 0.3)
    assert_close("out", out, ref_out, rel_rms=1e-6)
    assert_close("lse", lse, ref_lse, rel_rms=1e-6)


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("d", [80, 72, 64, 128, 16], ids=lambda d: f"d{d}")   # 72: Qwen3-VL's tower
@pytest.mark.parametrize("layout", LAYOUTS, ids=str)
def test_matches_reference(layout, d, dtype):
    lengths = LAYOUTS[layout]
    cu = _cu(lengths)
    q, k, v = _qkv(int(cu[-1]), 2, d, dtype, seed=len(lengths))
    # a fixed key tile keeps the GPU run to one compile per shape (the autotuned launch is tested below)
    out, lse = varlen_attention(q, k, v, cu, scale=d ** -0.5, max_seqlen=max(lengths), return_lse=True, block_n=64)
    ref_out, ref_lse = varlen_attention_reference(q, k, v, cu, scale=d ** -0.5, return_lse=True)
    assert out.dtype == dtype and out.is_contiguous() and lse.dtype == torch.float32
    assert_close("out", out, ref_out, rel_rms=TOL[dtype])
    assert_close("lse", lse, ref_lse, rel_rms=TOL[dtype])


@pytest.mark.parametrize("tile", [(64, 32), (128, 64), (16, 16)], ids=str)
def test_tiles_agree(tile):
    """Query / key tiles smaller and larger than the segments give the same result."""
    lengths = [64, 5, 100, 1, 47]
    cu = _cu(lengths)
    q, k, v = _qkv(int(cu[-1]), 3, 80, torch.float32, seed=7)
    out = varlen_attention(q, k, v, cu, scale=80 ** -0.5, block_m=tile[0], block_n=tile[1])
    ref = varlen_attention_reference(q, k, v, cu, scale=80 ** -0.5)
    assert_close("out", out, ref, rel_rms=1e-5)


@pytest.mark.parametrize("max_seqlen", [None, 64, 1000], ids=str)
def test_autotuned_launch(max_seqlen):
    """The default launch: query tile from max_seqlen (or 128 unknown), key tile from the autotuner."""
    lengths = [64, 64, 13, 0, 150]
    cu = _cu(lengths)
    q, k, v = _qkv(int(cu[-1]), 2, 80, torch.float16, seed=5)
    out = varlen_attention(q, k, v, cu, scale=80 ** -0.5, max_seqlen=max_seqlen)
    assert_close("out", out, varlen_attention_reference(q, k, v, cu, scale=80 ** -0.5), rel_rms=2e-3)


def test_segments_do_not_see_each_other():
    """Changing one segment's keys and values leaves every other segment's output unchanged."""
    lengths = [20, 33, 7]
    cu = _cu(lengths)
    q, k, v = (x.contiguous() for x in _qkv(60, 2, 32, torch.float32, seed=3))
    before = varlen_attention(q, k, v, cu, scale=0.2)
    k2, v2 = k.clone(), v.clone()
    k2[20:53] += 5.0
    v2[20:53] -= 3.0
    after = varlen_attention(q, k2, v2, cu, scale=0.2)
    assert torch.equal(before[:20], after[:20]) and torch.equal(before[53:], after[53:])
    assert not torch.allclose(before[20:53], after[20:53])


def test_work_table_lists_every_query_block_once():
    lengths = [0, 64, 65, 1, 0, 200, 3]
    cu = _cu(lengths)
    table = work_table(cu, sum(lengths), 64).cpu()
    expected = [(s, b) for s, n in enumerate(lengths) for b in range(-(-n // 64))]
    used = table[0] >= 0
    assert list(zip(table[0, used].tolist(), table[1, used].tolist())) == expected
    assert not used[len(expected):].any() and table.shape[1] == -(-sum(lengths) // 64) + len(lengths)


def test_launcher_checks_inputs():
    cu = _cu([8, 8])
    q, k, v = _qkv(16, 2, 32, torch.float32)
    with pytest.raises(AssertionError, match="int32"):
        varlen_attention(q, k, v, cu.long(), scale=1.0)
    with pytest.raises(AssertionError):
        varlen_attention(q, k[:8], v[:8], cu, scale=1.0)
    with pytest.raises(AssertionError, match="contiguous"):
        varlen_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), cu, scale=1.0)
    if DEVICE == "cpu":
        with pytest.raises(AssertionError, match="bf16"):
            varlen_attention(*(x.bfloat16() for x in (q, k, v)), cu, scale=1.0)


@pytest.mark.gpu
@pytest.mark.parametrize("d", [80, 72], ids=["qwen2.5-vl-7b", "qwen3-vl-8b"])
def test_vision_scale_bf16_against_reference(d):
    """A 448x448 (512x512 for Qwen3-VL) video's layouts in bf16: 64-token windows and 1024-token frame
    groups, head dim 80 (72)."""
    for lengths in ([64] * 64 + [16, 48], [1024] * 8):
        cu = _cu(lengths)
        q, k, v = _qkv(int(cu[-1]), 16, d, torch.bfloat16, seed=11)
        out = varlen_attention(q, k, v, cu, scale=d ** -0.5, max_seqlen=max(lengths))
        ref = varlen_attention_reference(q, k, v, cu, scale=d ** -0.5)
        assert_close(f"out {max(lengths)}", out, ref, rel_rms=1e-2)
