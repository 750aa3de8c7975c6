"""Model loading: the tiny alias is a real, deterministic checkpoint; bad names are clear errors."""
import hashlib

import pytest
import torch

from omnivideo.engine.loading import LoadOptions, load_model, resolve_checkpoint, resolve_device
from omnivideo.engine.tiny_model import ensure_tiny_checkpoint
from omnivideo.errors import DeviceError, ModelError


def _digest(root):
    h = hashlib.sha256()
    for f in sorted(p for p in root.iterdir() if p.is_file()):
        h.update(f.name.encode() + f.read_bytes())
    return h.hexdigest()


def test_tiny_checkpoint_is_deterministic(tmp_path):
    a = ensure_tiny_checkpoint(tmp_path / "a")
    b = ensure_tiny_checkpoint(tmp_path / "b")
    assert (a / "config.json").is_file() and list(a.glob("*.safetensors"))
    assert _digest(a) == _digest(b)


def test_tiny_loads_through_from_pretrained(tiny):
    cfg = tiny.model.config
    assert cfg.model_type == "qwen2_5_vl"
    assert cfg.text_config.hidden_size == 64 and cfg.text_config.num_hidden_layers == 2
    assert tiny.revision.startswith("xxh3:") and tiny.quantization == "none"   # weights by content
    assert tiny.tokenizer.chat_template


def test_unknown_model_names_are_clear_errors(tmp_path):
    with pytest.raises(ModelError, match="unknown model"):
        resolve_checkpoint(LoadOptions(model="no-such-model", models_dir=tmp_path))
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelError, match="no config.json"):
        resolve_checkpoint(LoadOptions(model=str(tmp_path / "empty"), models_dir=tmp_path))


def test_hub_id_without_network_fails_cleanly(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelError, match="could not load model"):
        load_model(LoadOptions(model="Qwen/Definitely-Not-Cached-VL", models_dir=tmp_path))


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-GPU error")
def test_cuda_request_without_gpu_is_a_device_error():
    with pytest.raises(DeviceError):
        resolve_device("cuda")


def test_nf4_skips_the_vision_tower_and_lm_head_but_quantizes_the_decoder(tiny):
    """transformers' own matcher over the real module names: the tower and lm_head stay 16-bit."""
    from transformers.quantizers.quantizers_utils import should_convert_module

    from omnivideo.engine.loading import NF4_SKIP_MODULES

    names = [n for n, m in tiny.model.named_modules() if isinstance(m, torch.nn.Linear)]
    visual = [n for n in names if ".visual." in f".{n}"]
    decoder = [n for n in names if ".layers." in n and "visual" not in n]
    assert visual and decoder and "lm_head" in names
    assert not any(should_convert_module(n, NF4_SKIP_MODULES) for n in visual + ["lm_head"])
    assert all(should_convert_module(n, NF4_SKIP_MODULES) for n in decoder)
