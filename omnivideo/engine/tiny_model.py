"""The tiny models, `tiny` (Qwen2.5-VL) and `tiny-qwen3-vl` (Qwen3-VL, DeepStack): random, built offline.

`tiny` is a random 2-layer Qwen2.5-VL, `tiny-qwen3-vl` a random 3-layer Qwen3-VL with two DeepStack
layers; both come with an offline-trained tokenizer.

They exist so that every code path (loading, vision tower, engine loop, cache, UI) runs on a machine
with no GPU and no model hub. Each is built deterministically from a config, saved as a real checkpoint
directory, and loaded back through the same `from_pretrained` path as real models. Their answers are
noise: the weights are random.

    path = ensure_tiny_checkpoint(data_dir / "models")            # or ensure_tiny_qwen3_vl_checkpoint(...)
    model = AutoModelForImageTextToText.from_pretrained(path)
"""
import fcntl
import json
import os
import shutil
import tempfile
from pathlib import Path

import torch

TINY_VERSION = 1
TINY_DIRNAME = f"tiny-qwen2.5-vl-v{TINY_VERSION}"
TINY_QWEN3_VL_VERSION = 1
TINY_QWEN3_VL_DIRNAME = f"tiny-qwen3-vl-v{TINY_QWEN3_VL_VERSION}"

SPECIAL_TOKENS = [
    "<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|vision_start|>", "<|vision_end|>",
    "<|vision_pad|>", "<|image_pad|>", "<|video_pad|>",
]

# The Qwen2-VL / Qwen2.5-VL chat template (system default, video and image placeholders). Also used
# as the fallback for real checkpoints whose tokenizer carries no template.
QWEN_VL_CHAT_TEMPLATE = (
    "{% set image_count = namespace(value=0) %}{% set video_count = namespace(value=0) %}"
    "{% for message in messages %}{% if loop.first and message['role'] != 'system' %}"
    "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n{% endif %}"
    "<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}<|im_end|>\n"
    "{% else %}{% for content in message['content'] %}"
    "{% if content['type'] == 'image' or 'image' in content or 'image_url' in content %}"
    "{% set image_count.value = image_count.value + 1 %}"
    "{% if add_vision_id %}Picture {{ image_count.value }}: {% endif %}"
    "<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif content['type'] == 'video' or 'video' in content %}"
    "{% set video_count.value = video_count.value + 1 %}"
    "{% if add_vision_id %}Video {{ video_count.value }}: {% endif %}"
    "<|vision_start|><|video_pad|><|vision_end|>"
    "{% elif 'text' in content %}{{ content['text'] }}{% endif %}{% endfor %}<|im_end|>\n"
    "{% endif %}{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)

# The Qwen3-VL chat template's structure (no default system turn; the same video wrapper, which the
# processor expands into one `<t seconds><|vision_start|>...<|vision_end|>` per frame group).
QWEN3_VL_CHAT_TEMPLATE = (
    "{% set video_count = namespace(value=0) %}"
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}"
    "{% else %}{% for content in message['content'] %}"
    "{% if content['type'] == 'image' or 'image' in content or 'image_url' in content %}"
    "<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif content['type'] == 'video' or 'video' in content %}"
    "{% set video_count.value = video_count.value + 1 %}"
    "{% if add_vision_id %}Video {{ video_count.value }}: {% endif %}"
    "<|vision_start|><|video_pad|><|vision_end|>"
    "{% elif 'text' in content %}{{ content['text'] }}{% endif %}{% endfor %}{% endif %}<|im_end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)

# A small fixed corpus: enough merges for readable (if meaningless) output; fixed so the tokenizer,
# and therefore the checkpoint, is the same on every machine.
_CORPUS = [
    "the quick brown fox jumps over the lazy dog",
    "what happens in this video? describe the scene at minute 3",
    "system user assistant you are a helpful assistant",
    "a person walks into the room, picks up a ball and throws it to the camera",
    "the lecture explains attention, the key value cache and sparse prefill",
    "at 00:12 the player scores; at 01:05 the crowd cheers; the match ends at 90:00",
    "red green blue yellow white black colour frame time second minute hour",
]


def build_tokenizer(vocab_size: int = 512, chat_template: str = QWEN_VL_CHAT_TEMPLATE):
    """Byte-level BPE trained on a fixed corpus, with the Qwen special tokens (ids 0..7)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token=None))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=SPECIAL_TOKENS,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(_CORPUS * 20, trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|im_end|>", pad_token="<|endoftext|>")
    fast.chat_template = chat_template
    return fast


def tiny_config(tokenizer):
    """Qwen2.5-VL config: text hidden 64, 2 layers, 4 query / 2 KV heads (head dim 16); vision depth 2
    with one windowed and one full-attention block, the real patch/merge/temporal sizes."""
    from transformers import Qwen2_5_VLConfig

    ids = {t: tokenizer.convert_tokens_to_ids(t) for t in SPECIAL_TOKENS}
    text = dict(vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=32768,
                rope_parameters={"rope_type": "default", "rope_theta": 10000.0, "mrope_section": [2, 3, 3]},
                bos_token_id=ids["<|endoftext|>"], eos_token_id=ids["<|im_end|>"],
                pad_token_id=ids["<|endoftext|>"], tie_word_embeddings=False)
    vision = dict(depth=2, hidden_size=32, intermediate_size=64, num_heads=2, out_hidden_size=64,
                  patch_size=14, temporal_patch_size=2, spatial_merge_size=2, window_size=112,
                  fullatt_block_indexes=[1], tokens_per_second=2)
    return Qwen2_5_VLConfig(text_config=text, vision_config=vision, image_token_id=ids["<|image_pad|>"],
                            video_token_id=ids["<|video_pad|>"], vision_start_token_id=ids["<|vision_start|>"],
                            vision_end_token_id=ids["<|vision_end|>"])


def tiny_qwen3_vl_config(tokenizer):
    """Qwen3-VL config: text hidden 64, 3 layers, 8 query / 2 KV heads of head dim 16 (GQA 4, like the 8B; a
    head dim other than hidden / heads, as in the 4B), interleaved M-RoPE; vision depth 3 with DeepStack
    features from blocks 0 and 1 (added after decoder layers 0 and 1), the real patch/merge/temporal sizes."""
    from transformers import Qwen3VLConfig

    ids = {t: tokenizer.convert_tokens_to_ids(t) for t in SPECIAL_TOKENS}
    text = dict(vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128, num_hidden_layers=3,
                num_attention_heads=8, num_key_value_heads=2, head_dim=16, max_position_embeddings=32768,
                rope_parameters={"rope_type": "default", "rope_theta": 5000000.0, "mrope_section": [4, 2, 2],
                                 "mrope_interleaved": True},
                pad_token_id=ids["<|endoftext|>"])
    vision = dict(depth=3, hidden_size=32, intermediate_size=64, num_heads=2, out_hidden_size=64, patch_size=16,
                  temporal_patch_size=2, spatial_merge_size=2, num_position_embeddings=64,
                  deepstack_visual_indexes=[0, 1])
    return Qwen3VLConfig(text_config=text, vision_config=vision, image_token_id=ids["<|image_pad|>"],
                         video_token_id=ids["<|video_pad|>"], vision_start_token_id=ids["<|vision_start|>"],
                         vision_end_token_id=ids["<|vision_end|>"], tie_word_embeddings=False)


def _random_model(model_class, config):
    """The model with seed-0 weights, leaving the caller's RNG as it was."""
    state = torch.random.get_rng_state()
    torch.manual_seed(0)
    try:
        return model_class(config).eval()
    finally:
        torch.random.set_rng_state(state)


def _build_qwen3_vl_into(dest: Path) -> None:
    from transformers import GenerationConfig, Qwen3VLForConditionalGeneration

    tokenizer = build_tokenizer(chat_template=QWEN3_VL_CHAT_TEMPLATE)
    model = _random_model(Qwen3VLForConditionalGeneration, tiny_qwen3_vl_config(tokenizer))
    model.generation_config = GenerationConfig(eos_token_id=tokenizer.convert_tokens_to_ids("<|im_end|>"),
                                               pad_token_id=tokenizer.convert_tokens_to_ids("<|endoftext|>"))
    model.save_pretrained(dest)
    tokenizer.save_pretrained(dest)
    (dest / "omnivideo_tiny.json").write_text(json.dumps({"version": TINY_QWEN3_VL_VERSION}))


def _build_into(dest: Path) -> None:
    from transformers import GenerationConfig, Qwen2_5_VLForConditionalGeneration

    tokenizer = build_tokenizer()
    config = tiny_config(tokenizer)
    model = _random_model(Qwen2_5_VLForConditionalGeneration, config)
    # from the tokenizer: transformers 5.17 keeps no top-level eos/pad ids on Qwen2_5_VLConfig
    model.generation_config = GenerationConfig(eos_token_id=tokenizer.convert_tokens_to_ids("<|im_end|>"),
                                               pad_token_id=tokenizer.convert_tokens_to_ids("<|endoftext|>"))
    model.save_pretrained(dest)
    tokenizer.save_pretrained(dest)
    (dest / "omnivideo_tiny.json").write_text(json.dumps({"version": TINY_VERSION}))


def _ensure(models_dir: Path, dirname: str, build) -> Path:
    """Build a tiny checkpoint under `models_dir` once (atomically, under a lock) and return its path."""
    models_dir.mkdir(parents=True, exist_ok=True)
    dest = models_dir / dirname
    if (dest / "omnivideo_tiny.json").exists():
        return dest
    with open(models_dir / ".tiny.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # two first runs at once build it once
        if (dest / "omnivideo_tiny.json").exists():
            return dest
        tmp = Path(tempfile.mkdtemp(prefix=".tiny-", dir=models_dir))
        try:
            build(tmp)
            os.replace(tmp, dest)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return dest


def ensure_tiny_checkpoint(models_dir: Path) -> Path:
    """The `tiny` Qwen2.5-VL checkpoint under `models_dir` (built on first use)."""
    return _ensure(models_dir, TINY_DIRNAME, _build_into)


def ensure_tiny_qwen3_vl_checkpoint(models_dir: Path) -> Path:
    """The `tiny-qwen3-vl` checkpoint under `models_dir` (built on first use)."""
    return _ensure(models_dir, TINY_QWEN3_VL_DIRNAME, _build_qwen3_vl_into)


# alias -> builder: what `--model tiny` / `--model tiny-qwen3-vl` resolve to (omnivideo/engine/loading.py)
TINY_BUILDERS = {"tiny": ensure_tiny_checkpoint, "tiny-qwen3-vl": ensure_tiny_qwen3_vl_checkpoint}
