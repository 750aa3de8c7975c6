"""The decode-time MLP: SiLU(gate) * up in one kernel over the fused gate|up GEMV output."""
import pytest
import torch
from transformers import Qwen2Config
from transformers.models.qwen2.modeling_qwen2 import Qwen2MLP

from conftest import DEVICE, assert_close, requires_gpu
from omnivideo.engine.fused.nf4_fusion import group_of
from omnivideo.engine.fused.nf4_linear import route_nf4_linears
from omnivideo.engine.fused.text_mlp import _adjacent_halves, fuse_text_mlp, unfuse_text_mlp
from omnivideo.bench.random_model import quantize_nf4

pytestmark = pytest.mark.usefixtures("triton_kernels")   # the SiLU*up kernel and the routed GEMV, under the interpreter on a CPU


def _mlp(hidden: int = 256, inter: int = 256) -> torch.nn.Module:
    torch.manual_seed(0)
    mlp = Qwen2MLP(Qwen2Config(hidden_size=hidden, intermediate_size=inter, hidden_act="silu"))
    for p in mlp.parameters():
        torch.nn.init.normal_(p, std=0.05)
    quantize_nf4(mlp, torch.float32, torch.device(DEVICE))
    for m in mlp.modules():
        if hasattr(m, "support_avx512bf16_for_cpu"):
            m.support_avx512bf16_for_cpu = False
    return mlp.eval()


def test_fused_mlp_equals_transformers_forward():
    mlp = _mlp()
    route_nf4_linears(mlp, enabled=True)
    assert group_of(mlp.gate_proj) is group_of(mlp.up_proj) is not None
    x = torch.randn(1, 1, 256).to(DEVICE)
    with torch.inference_mode():
        expected = type(mlp).forward(mlp, x)  # act_fn(gate) * up as transformers writes it
        gate, up = mlp.gate_proj(x), mlp.up_proj(x)
        assert _adjacent_halves(gate, up) is not None  # the fused GEMV's two halves: the kernel path runs
        assert fuse_text_mlp(mlp) == 1 and fuse_text_mlp(mlp) == 0  # idempotent
        actual = mlp(x)
    assert_close("mlp", actual, expected, rel_rms=1e-6)
    assert unfuse_text_mlp(mlp) == 1 and "forward" not in vars(mlp)


def test_unfused_projections_take_transformers_path():
    mlp = _mlp()
    fuse_text_mlp(mlp)
    x = torch.randn(1, 3, 256).to(DEVICE)  # not routed at all: bitsandbytes' projections, separate outputs
    with torch.inference_mode():
        assert _adjacent_halves(mlp.gate_proj(x), mlp.up_proj(x)) is None
        assert torch.equal(mlp(x), type(mlp).forward(mlp, x))


def test_adjacency_is_checked_exactly():
    buf = torch.randn(1, 8)
    assert _adjacent_halves(buf[:, :4], buf[:, 4:]) is not None
    assert _adjacent_halves(buf[:, :4], buf[:, 4:].clone()) is None
    assert _adjacent_halves(buf[:, 4:], buf[:, :4]) is None  # up before gate
    two = torch.randn(2, 8)
    assert _adjacent_halves(two[:, :4], two[:, 4:]) is None  # two rows: halves are not contiguous blocks


@requires_gpu
def test_separate_allocations_that_touch_are_not_halves():
    """The caching allocator often places two small tensors back to back: adjacent, but not one buffer."""
    pairs = [(torch.randn(1, 128, device=DEVICE), torch.randn(1, 128, device=DEVICE)) for _ in range(16)]
    touching = [(g, u) for g, u in pairs if u.data_ptr() == g.data_ptr() + g.nbytes]
    assert all(_adjacent_halves(g, u) is None for g, u in touching)
    buf = torch.randn(1, 256, device=DEVICE)
    assert _adjacent_halves(buf[:, :128], buf[:, 128:]) is not None
