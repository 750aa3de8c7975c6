"""The trained model is a real Qwen2.5-VL checkpoint: save -> from_pretrained round trip, size, speedups exact."""
import pytest
import torch
from train_testkit import CLIPS, TINY, tokenizer_and_chat

from omnivideo.errors import ConfigError
from omnivideo.train.forward import answer_loss, video_embeddings
from omnivideo.train.model import MAX_SHARD, ModelSize, build_model, count_parameters, export_checkpoint
from omnivideo.train.sample import DataConfig, make_sample
from omnivideo.train.vision_attention import install_batched_vision_attention, remove_batched_vision_attention


def test_export_round_trip_through_auto_classes(tmp_path):
    from transformers import AutoModelForImageTextToText, AutoTokenizer, Qwen2_5_VLForConditionalGeneration

    tok, chat = tokenizer_and_chat()
    model = build_model(TINY, tok, seed=1)
    dest = export_checkpoint(model, tok, tmp_path / "model", record={"stage": "test"})
    loaded = AutoModelForImageTextToText.from_pretrained(dest)
    assert isinstance(loaded, Qwen2_5_VLForConditionalGeneration) and loaded.dtype == torch.bfloat16
    assert Qwen2_5_VLForConditionalGeneration.from_pretrained(dest).config.text_config.hidden_size == TINY.hidden
    tok2 = AutoTokenizer.from_pretrained(dest)
    assert tok2("What colour is the star? [00:12]")["input_ids"] == tok("What colour is the star? [00:12]")["input_ids"]
    assert tok2.chat_template == tok.chat_template
    saved = loaded.state_dict()
    for name, value in model.state_dict().items():
        assert torch.equal(saved[name], value.to(torch.bfloat16)), name   # the bf16 cast of the trained weights
    sample = make_sample(2, CLIPS, chat, augment=False)
    with torch.no_grad():
        a, _ = answer_loss(model.eval(), sample, train_tower=False)
        b, _ = answer_loss(loaded.float().eval(), sample, train_tower=False)
    assert abs(float(a) - float(b)) < 0.02 * float(a)
    assert (dest / "omnivideo_synth.json").is_file() and not list(tmp_path.glob(".model-*"))


def test_default_size_fits_the_16_mb_budget(tmp_path):
    tok, _ = tokenizer_and_chat()
    model = build_model(ModelSize(), tok)
    params = count_parameters(model)
    assert 6e6 < params["total"] < 8e6 and params["vision"] < 2e6
    dest = export_checkpoint(model, tok, tmp_path / "m")
    shards = list(dest.glob("*.safetensors"))
    assert shards and all(s.stat().st_size <= MAX_SHARD for s in shards)
    assert sum(s.stat().st_size for s in shards) <= 16e6


def test_model_size_is_validated():
    with pytest.raises(ConfigError):
        ModelSize(hidden=256, heads=4, mrope_section=(8, 8, 8))
    with pytest.raises(ConfigError):
        ModelSize(vision_depth=2, fullatt_blocks=(3,))


@pytest.mark.parametrize("size", [112, 224])
def test_batched_vision_attention_equals_transformers_loop(size):
    tok, chat = tokenizer_and_chat()
    model = build_model(TINY, tok, seed=3)
    sample = make_sample(5, DataConfig(frame_size=size, min_seconds=7, max_seconds=7, max_frames=8), chat)
    outs = []
    for batched in (False, True):
        if batched:
            assert install_batched_vision_attention(model) == TINY.vision_depth
        model.zero_grad()
        emb = video_embeddings(model, sample.video, "cpu", train_tower=True)
        (emb.square().sum()).backward()
        outs.append((emb.detach(), model.model.visual.patch_embed.proj.weight.grad.clone()))
    remove_batched_vision_attention(model)
    torch.testing.assert_close(outs[1][0], outs[0][0], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(outs[1][1], outs[0][1], rtol=1e-4, atol=1e-5)


def test_padded_batch_equals_one_sample_at_a_time():
    from omnivideo.train.batch import batch_answer_loss

    tok, chat = tokenizer_and_chat()
    model = build_model(TINY, tok, seed=4).eval()
    clips = DataConfig(frame_size=112, min_seconds=7, max_seconds=40, max_frames=12)
    samples = [make_sample(s, clips, chat, augment=False) for s in (1, 2, 3)]
    assert len({s.input_ids.numel() for s in samples}) > 1, "the test needs padding"
    with torch.no_grad():
        loss, per = batch_answer_loss(model, samples, train_tower=False)
        singles = [answer_loss(model, s, train_tower=False) for s in samples]
    for (one, one_per), batched in zip(singles, per):
        torch.testing.assert_close(batched, one_per, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(loss, torch.stack([o for o, _ in singles]).mean(), rtol=1e-5, atol=1e-6)


def test_a_run_can_start_from_an_exported_checkpoint(tmp_path):
    """`--init DIR` with an exported model/ (or the shipped checkpoint): the weights come back through
    from_pretrained under the training model's own key names, bf16-rounded."""
    from omnivideo.train.checkpoint import init_weights

    tok, _ = tokenizer_and_chat()
    model = build_model(TINY, tok, seed=3)
    export_checkpoint(model, tok, tmp_path / "model")
    weights = init_weights(tmp_path / "model")
    fresh = build_model(TINY, tok, seed=4)
    fresh.load_state_dict(weights)        # strict: every key matches
    for name, p in model.state_dict().items():
        assert torch.equal(fresh.state_dict()[name], p.to(torch.bfloat16).float()), name
    with pytest.raises(ConfigError):
        init_weights(tmp_path / "nothing")
