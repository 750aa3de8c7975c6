"""Training-aware OmniSparse attention (omnivideo/train/sparse_attention.py): the training forward with the
sparse prefill's selection in place, against dense attention and against the selection's own definition."""
import sys
from pathlib import Path

import pytest
import torch

from conftest import DEVICE
from omnivideo.kernels.sparse_prefill.reference import (block_lists_reference, block_sparse_attention_reference,
                                                        estimate_reference)
from omnivideo.kernels.sparse_prefill.sparse_plan import SparseParams
from omnivideo.train.forward import answer_loss
from omnivideo.train.model import build_model
from omnivideo.train.sample import DataConfig, make_sample
from omnivideo.train.sparse_attention import (SparseTrainingState, block_mask_from_keep,
                                              install_sparse_training_attention, model_density, note_text_rows,
                                              remove_sparse_training_attention, sparse_training_attention)
from train_testkit import TINY, tokenizer_and_chat

sys.path.insert(0, str(Path(__file__).parents[1] / "kernels"))   # the kernel tests' inputs with local attention
from sparse_prefill_inputs import local_qkv  # noqa: E402

SMALL = dict(block_size=16, window=32, min_blocks=1)


def _loss_and_grads(model, sample):
    model.zero_grad()
    loss, _ = answer_loss(model, sample, train_tower=True)
    loss.backward()
    return loss.detach(), {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


def test_full_budget_equals_dense_loss_and_gradients():
    """gamma = 1 keeps every causal block: the masked path (not a fallback) gives dense loss and gradients."""
    tok, chat = tokenizer_and_chat()
    model = build_model(TINY, tok, seed=2)
    sample = make_sample(3, DataConfig(frame_size=112, min_seconds=10, max_seconds=10, max_frames=8), chat)
    dense_loss, dense_grads = _loss_and_grads(model, sample)
    state = install_sparse_training_attention(model, SparseParams(gamma=1.0, dense_fallback=1.0, **SMALL))
    note_text_rows(model, (sample.input_ids != model.config.video_token_id)[None])
    sparse_loss, sparse_grads = _loss_and_grads(model, sample)
    assert len(state.densities) == TINY.layers and model_density(model) == 1.0
    remove_sparse_training_attention(model)
    torch.testing.assert_close(sparse_loss, dense_loss, rtol=1e-5, atol=1e-6)
    assert sparse_grads.keys() == dense_grads.keys()
    for name, g in dense_grads.items():
        torch.testing.assert_close(sparse_grads[name], g, rtol=1e-4, atol=1e-6, msg=name)
    assert model.config.get_text_config()._attn_implementation != "omnisparse_train"


def _module(params):
    class Attn(torch.nn.Module):
        pass
    m = Attn()
    m._omni_sparse_training = SparseTrainingState(params)
    return m


def test_sparse_training_attention_is_the_sparse_prefill_and_its_gradient():
    """At gamma < 1 the training attention equals block-sparse attention over the prefill's own lists, and
    its gradient is that of the same definition: no gradient reaches a key no query kept."""
    params = SparseParams(gamma=0.6, theta_local=0.8, dense_fallback=1.0, **SMALL)
    q, k, v = (t.requires_grad_() for t in local_qkv(8, 2, 333, 32, torch.float32, "cpu", seed=1))
    scale = 32 ** -0.5
    lists = block_lists_reference(estimate_reference(q.detach(), k.detach(), q_offset=0, params=params, scale=scale),
                                  q_offset=0, Nk=333, params=params)
    assert 0.2 < lists.density < 0.9 and lists.lazy.any(), "inputs must give a sparse plan"
    out, _ = sparse_training_attention(_module(params), q[None], k[None], v[None], None, scaling=scale)
    ref, _ = block_sparse_attention_reference(q, k, v, lists, q_offset=0, scale=scale)
    torch.testing.assert_close(out[0].transpose(0, 1), ref, rtol=1e-5, atol=1e-5)
    weights = torch.randn_like(ref)
    g_out = torch.autograd.grad((out[0].transpose(0, 1) * weights).sum(), (q, k, v), retain_graph=True)
    g_ref = torch.autograd.grad((ref * weights).sum(), (q, k, v))
    for a, b in zip(g_out, g_ref):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=5e-5)
    from omnivideo.kernels.sparse_prefill.reference import key_mask_reference
    t = 330                                                   # a late row of query head 0 (KV head 0)
    kept = key_mask_reference(lists, q_offset=0, Nq=333, Nk=333)[0, t]
    g_k = torch.autograd.grad(out[0, t, 0].sum(), k)[0][0]   # [Nk, d]: only its kept keys get a gradient
    assert (~kept).sum() > 100 and (g_k[~kept] == 0).all() and (g_k[kept].abs().sum(-1) > 0).any()


@pytest.mark.filterwarnings("ignore:flex_attention called without torch.compile")
def test_flex_block_mask_equals_the_lists():
    """FlexAttention over `block_mask_from_keep` (forward; torch has no CPU backward for it) equals the
    block-sparse reference on the same lists."""
    from torch.nn.attention.flex_attention import flex_attention

    params = SparseParams(gamma=0.6, theta_local=0.8, dense_fallback=1.0, **SMALL)
    q, k, v = local_qkv(8, 2, 333, 32, torch.float32, DEVICE, seed=2)
    scale = 32 ** -0.5
    lists = block_lists_reference(estimate_reference(q, k, q_offset=0, params=params, scale=scale),
                                  q_offset=0, Nk=333, params=params)
    from omnivideo.kernels.sparse_prefill.reference import block_mask_reference
    keep = block_mask_reference(lists, -(-333 // 16))[None]
    with torch.no_grad():
        out = flex_attention(q[None], k[None], v[None], block_mask=block_mask_from_keep(keep, 4, 16, 333),
                             scale=scale, enable_gqa=True)
    ref, _ = block_sparse_attention_reference(q, k, v, lists, q_offset=0, scale=scale)
    torch.testing.assert_close(out[0], ref, rtol=1e-5, atol=1e-5)


@pytest.mark.gpu
def test_flex_gradient_equals_the_reference_on_cuda():
    """The CUDA path (compiled FlexAttention) against the masked-SDPA reference, forward and gradients."""
    from omnivideo.train import sparse_attention as sa

    params = SparseParams(gamma=0.6, theta_local=0.8, dense_fallback=1.0, **SMALL)
    q, k, v = (t.requires_grad_() for t in local_qkv(8, 2, 333, 32, torch.float32, "cuda", seed=3))
    scale = 32 ** -0.5
    lists = block_lists_reference(estimate_reference(q.detach(), k.detach(), q_offset=0, params=params, scale=scale),
                                  q_offset=0, Nk=333, params=params)
    from omnivideo.kernels.sparse_prefill.reference import block_mask_reference
    keep = block_mask_reference(lists, -(-333 // 16))[None]
    flex = sa._flex(q[None], k[None], v[None], keep, 16, scale)
    ref = sa._reference(q[None], k[None], v[None], keep, 16, scale)
    torch.testing.assert_close(flex, ref, rtol=1e-4, atol=1e-4)
    weights = torch.randn_like(ref)
    for a, b in zip(torch.autograd.grad((flex * weights).sum(), (q, k, v)),
                    torch.autograd.grad((ref * weights).sum(), (q, k, v))):
        torch.testing.assert_close(a, b, rtol=1e-3, atol=1e-4)


def test_a_run_trains_with_sparse_attention_and_exports_a_plain_checkpoint(tmp_path):
    """`sparse_gamma` puts the sparse attention in the training forward (logged as sparse_density); the
    exported model/ loads through from_pretrained with ordinary attention."""
    from transformers import Qwen2_5_VLForConditionalGeneration

    from omnivideo.train.config import TrainConfig
    from omnivideo.train.trainer import Trainer
    from train_testkit import CLIPS

    cfg = TrainConfig(stage="A", out_dir=str(tmp_path), model=TINY, data=CLIPS, steps=2, warmup=1, lr=3e-3,
                      eval_videos=0, checkpoint_every=100, log_every=1, max_minutes=30, sparse_gamma=0.9)
    trainer = Trainer(cfg)
    assert trainer.model.config.get_text_config()._attn_implementation == "omnisparse_train"
    summary = trainer.run()
    rows = [r for r in trainer.history if "loss" in r]
    assert summary["status"] == "done" and all(torch.isfinite(torch.tensor(r["loss"])) for r in rows)
    assert all(0 < r["kinds"]["sparse_density"] <= 1 for r in rows)
    loaded = Qwen2_5_VLForConditionalGeneration.from_pretrained(tmp_path / "model")
    assert loaded.config.get_text_config()._attn_implementation != "omnisparse_train"


def test_sparse_gamma_is_validated(tmp_path):
    from omnivideo.errors import ConfigError
    from omnivideo.train.config import TrainConfig

    with pytest.raises(ConfigError, match="sparse_gamma"):
        TrainConfig(stage="A", out_dir=str(tmp_path), sparse_gamma=1.5)
