"""A stored prefix is used only for the very bytes it holds: weights by content, the prefill's shape, the
preset's values, the code and the stack are all part of its identity (real store, real tiny model, CLI)."""
import json
import shutil
from dataclasses import replace

import torch
from safetensors.torch import load_file, save_file

from cli_runner import run_cli
from conftest import make_clip
from omnivideo.app.app import App
from omnivideo.app.code_version import source_digest
from omnivideo.app.config import AppConfig
from omnivideo.app.library import cache_key
from omnivideo.engine import weights_fingerprint
from omnivideo.engine.prefill import sparse_prefill
from omnivideo.kernels.sparse_prefill.sparse_plan import SparseParams
from omnivideo.storage import KVStore
from storage_testkit import make_key, make_layers


def _ask(home, video, *extra):
    out = run_cli("--data-dir", home, "ask", video, "What happens?", "--json", "--max-new-tokens", "2", *extra)
    assert out.exit_code == 0, out.stderr
    return json.loads(out.stdout)


def test_a_resaved_checkpoint_with_other_weights_of_the_same_size_misses(tiny, data_dir, tmp_path):
    home, ckpt = tmp_path / "home", tmp_path / "ckpt"
    shutil.copytree(data_dir / "models" / "tiny-qwen2.5-vl-v1", ckpt)
    video = make_clip(tmp_path / "v.mp4", seconds=2, seed=5)
    assert _ask(home, video, "--model", ckpt)["cache_hit"] is False
    assert _ask(home, video, "--model", ckpt)["cache_hit"] is True
    weights = ckpt / "model.safetensors"
    size = weights.stat().st_size
    tensors = load_file(weights)
    name = next(n for n in sorted(tensors) if "layers.0.mlp.down_proj" in n)
    tensors[name] = tensors[name] + 1e-3       # a fine-tune saved into the same folder
    save_file(tensors, weights, metadata={"format": "pt"})
    assert weights.stat().st_size == size      # the old size-only fingerprint could not tell
    assert _ask(home, video, "--model", ckpt)["cache_hit"] is False


def test_checkpoint_digests_are_remembered_by_stat(tmp_path, monkeypatch):
    (tmp_path / "a.bin").write_bytes(b"x" * 1000)
    memo = tmp_path / ".memo.json"   # hidden files are not part of a checkpoint
    first = weights_fingerprint.fingerprint_checkpoint(tmp_path, memo)
    hashed = []
    real = weights_fingerprint._file_digest
    monkeypatch.setattr(weights_fingerprint, "_file_digest", lambda p: hashed.append(p) or real(p))
    assert weights_fingerprint.fingerprint_checkpoint(tmp_path, memo) == first and hashed == []
    (tmp_path / "a.bin").write_bytes(b"y" * 1000)
    assert weights_fingerprint.fingerprint_checkpoint(tmp_path, memo) != first and len(hashed) == 1


def test_chunk_size_and_preset_values_are_keyed(tmp_path, monkeypatch):
    video = make_clip(tmp_path / "k.mp4", seconds=2, seed=6)
    app = App(AppConfig(data_dir=tmp_path, model="tiny"))
    args = (app.store, video, app.loaded, app.chat_format(), app.sampling_config())
    base = cache_key(*args, "balanced", app.engine.config)
    assert cache_key(*args, "balanced", replace(app.engine.config, chunk_size=2048)).digest() != base.digest()
    monkeypatch.setitem(sparse_prefill.PRESETS, "balanced", SparseParams(gamma=0.9))
    changed = cache_key(*args, "balanced", app.engine.config)
    assert changed.digest() != base.digest() and dict(changed.engine)["sparse.gamma"] == 0.9
    assert dict(base.stack)["transformers"] and dict(base.stack)["dense_backend"] == "mask"
    app.close()


def test_an_entry_from_another_stack_is_refused_on_import_and_flagged_in_ls(tmp_path):
    other = tmp_path / "other"
    with KVStore(other / "cache") as store:
        entry = store.put(make_key(stack={"torch": torch.__version__, "transformers": "5.17.0", "device": "cpu"}),
                          make_layers(), {"rope_delta": 0})
        store.export_entry(entry.id, tmp_path / "e.omnikv")
        entry.close()
    home = tmp_path / "home"
    refused = run_cli("--data-dir", home, "cache", "import", tmp_path / "e.omnikv")
    assert refused.exit_code == 2 and refused.stderr.count("\n") == 1
    assert "would never be used here" in refused.stderr and "transformers 5.17.0 (here" in refused.stderr
    assert run_cli("--data-dir", home, "cache", "import", tmp_path / "e.omnikv", "--force").exit_code == 0
    listed = run_cli("--data-dir", home, "cache", "ls")
    assert "unusable here: made with code 1" in listed.stdout and "transformers 5.17.0" in listed.stdout


def test_the_code_version_follows_statements_not_comments(tmp_path):
    src = tmp_path / "pkg" / "engine"
    src.mkdir(parents=True)
    (src / "m.py").write_text('"""Doc."""\n\ndef f(x):\n    """Shape doc."""\n    return x + 1  # why\n')
    before = source_digest(tmp_path / "pkg", ("engine",))
    (src / "m.py").write_text('"""Other doc."""\n\n\ndef f(x):\n    # a new comment\n    return x + 1\n')
    assert source_digest(tmp_path / "pkg", ("engine",)) == before
    (src / "m.py").write_text('"""Doc."""\n\ndef f(x):\n    return x + 2\n')
    assert source_digest(tmp_path / "pkg", ("engine",)) != before


def test_a_changed_chunk_size_misses_through_the_app(tmp_path):
    video = make_clip(tmp_path / "c.mp4", seconds=2, seed=7)
    for chunk, hit in ((4096, False), (4096, True), (2048, False)):
        app = App(AppConfig(data_dir=tmp_path / "home", model="tiny", chunk_size=chunk))
        chat = app.open_video(video)
        assert chat.video.cache_hit is hit, (chunk, hit)
        app.close()
