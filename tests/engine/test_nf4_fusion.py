"""q|k|v and gate|up NF4 projections in one GEMV: same outputs, shared storage, safe fallbacks."""
import pytest
import torch

from conftest import DEVICE, assert_close, capture_graph, requires_gpu
from omnivideo.engine.fused.nf4_fusion import group_of
from omnivideo.engine.fused.nf4_linear import nf4_weight, route_nf4_linears, unroute_nf4_linears
from omnivideo.kernels.nf4.reference import NF4Weight, absmax_reference, nf4_matmul_reference

K = 256


class _Attention(torch.nn.Module):
    """The calling pattern of the modeling code: three projections of the same tensor."""

    def __init__(self, n_q: int, n_kv: int, bias: bool):
        super().__init__()
        lin = torch.nn.Linear
        self.q_proj, self.k_proj, self.v_proj = lin(K, n_q, bias=bias), lin(K, n_kv, bias=bias), lin(K, n_kv, bias=bias)

    def forward(self, h):
        return self.q_proj(h), self.k_proj(h), self.v_proj(h)


def _nf4(module: torch.nn.Module, seed: int = 0, dtype: torch.dtype = torch.float32) -> torch.nn.Module:
    from omnivideo.bench.random_model import quantize_nf4

    torch.manual_seed(seed)
    for p in module.parameters():
        torch.nn.init.normal_(p, std=0.05)
    quantize_nf4(module, dtype, torch.device(DEVICE))
    for m in module.modules():
        if hasattr(m, "support_avx512bf16_for_cpu"):
            m.support_avx512bf16_for_cpu = False
    return module


def _reference(module, h):
    """Each projection from its own NF4 weight, in fp32."""
    outs = []
    for m in (module.q_proj, module.k_proj, module.v_proj):
        bias = None if m.bias is None else m.bias.float()
        outs.append(nf4_matmul_reference(h.reshape(-1, K).float(), nf4_weight(m), bias).reshape(*h.shape[:-1], -1))
    return outs


@pytest.mark.parametrize("rows", [1, 3])
@pytest.mark.parametrize("bias", [True, False])
def test_fused_qkv_equals_each_projection(rows, bias):
    att = _nf4(_Attention(256, 64, bias))  # 1024 / 256 / 256 quant blocks: whole absmax2 blocks
    h = torch.randn(1, rows, K).to(DEVICE)
    with torch.inference_mode():
        before = [type(m).forward(m, h) for m in (att.q_proj, att.k_proj, att.v_proj)]  # bitsandbytes
        expected = _reference(att, h)
        route_nf4_linears(att, enabled=True)
        group = group_of(att.q_proj)
        assert group is not None and group is group_of(att.v_proj) and group.weight.shape == (384, K)
        assert group.weight.offset_per_block and group.weight.offset.numel() == 6
        # the members' tensors are views of the fused buffers: bitsandbytes reads the same values
        assert att.k_proj.weight.data.untyped_storage().data_ptr() == group.weight.packed.untyped_storage().data_ptr()
        after = [type(m).forward(m, h) for m in (att.q_proj, att.k_proj, att.v_proj)]
        for b, a in zip(before, after):
            assert torch.equal(a, b)
        fused = att(h)
        assert group._last is None  # v_proj took the last slice: the input is not kept alive
        for name, got, want in zip("qkv", fused, expected):
            assert got.shape == want.shape and got.is_contiguous()
            assert_close(name, got, want, rel_rms=1e-5)


def test_fused_absmax_keeps_each_members_offset():
    att = _nf4(_Attention(256, 64, True), seed=3)
    members = [nf4_weight(m) for m in (att.q_proj, att.k_proj, att.v_proj)]
    assert len({float(w.offset) for w in members}) == 3  # three different means: one offset would be wrong
    separate = torch.cat([absmax_reference(w) for w in members])
    route_nf4_linears(att, enabled=True)
    assert torch.equal(absmax_reference(group_of(att.q_proj).weight), separate)


def test_a_member_called_with_another_tensor_computes_alone():
    att = _nf4(_Attention(256, 64, True))
    route_nf4_linears(att, enabled=True)
    h, other = torch.randn(1, 1, K).to(DEVICE), torch.randn(1, 1, K).to(DEVICE)
    with torch.inference_mode():
        att.q_proj(h)
        k_other = att.k_proj(other)  # not the input q_proj saw: its own GEMV, not q_proj's slice
        k_alone = att.k_proj(other.clone())
    assert torch.equal(k_other, k_alone)
    assert_close("k", k_other, _reference(att, other)[1], rel_rms=1e-5)


def test_unaligned_or_mixed_groups_are_left_alone():
    att = _nf4(_Attention(64, 32, True))  # 256 + 128 + 128 quant blocks: k's absmax2 blocks would straddle
    route_nf4_linears(att, enabled=True)
    assert group_of(att.q_proj) is None
    h = torch.randn(1, 1, K).to(DEVICE)
    with torch.inference_mode():
        for name, got, want in zip("qkv", att(h), _reference(att, h)):
            assert_close(name, got, want, rel_rms=1e-5)


def test_unroute_drops_the_groups():
    att = _nf4(_Attention(256, 64, True))
    route_nf4_linears(att, enabled=True)
    assert route_nf4_linears(att, enabled=True) == 3  # idempotent: fusing twice would copy views again
    assert unroute_nf4_linears(att) == 3 and group_of(att.k_proj) is None


def test_offset_per_block_is_validated():
    w = nf4_weight(_nf4(torch.nn.Sequential(torch.nn.Linear(K, 256)))[0])
    with pytest.raises(ValueError, match="one value per absmax_scale"):
        NF4Weight(w.packed, w.absmax, w.shape, w.code, absmax_code=w.absmax_code, absmax_scale=w.absmax_scale,
                  offset=torch.zeros(3))


@requires_gpu
def test_fused_qkv_in_bf16_is_capturable_and_matches():
    """The register-lookup path (bf16) of the fused GEMV, replayed from a CUDA graph."""
    att = _nf4(_Attention(1024, 256, True), dtype=torch.bfloat16)
    route_nf4_linears(att, enabled=True)
    assert group_of(att.q_proj) is not None
    h = torch.randn(1, 1, K, device=DEVICE, dtype=torch.bfloat16)
    with torch.inference_mode():
        expected = _reference(att, h)
        eager = att(h)
        graph, captured = capture_graph(lambda: att(h))
        graph.replay()
        torch.cuda.synchronize()
    for name, e, c, want in zip("qkv", eager, captured, expected):
        assert torch.equal(e, c), name
        assert_close(name, c, want, rel_rms=8e-3)
