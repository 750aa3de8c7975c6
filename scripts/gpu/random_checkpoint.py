"""Write a random-weight Qwen2.5-VL-7B checkpoint (real shapes, 32-block tower) for runs that need a model on
disk: `ask` on a long video under a GPU budget, `bench cache` at 64K. Answers are noise; sizes are real.

    python3 scripts/gpu/random_checkpoint.py /tmp/r7b      # ~16.6 GB of bf16 safetensors, about a minute on an H200
"""
import sys
from pathlib import Path

import torch
from transformers import GenerationConfig, Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration

from omnivideo.bench.random_model import FULL_VISION, QWEN25_VL_7B_TEXT
from omnivideo.engine.tiny_model import SPECIAL_TOKENS, build_tokenizer


def main(dest: Path) -> None:
    tokenizer = build_tokenizer()   # the tiny model's offline BPE: its special-token ids become the config's
    ids = {t: tokenizer.convert_tokens_to_ids(t) for t in SPECIAL_TOKENS}
    text = dict(QWEN25_VL_7B_TEXT, bos_token_id=ids["<|endoftext|>"], eos_token_id=ids["<|im_end|>"],
                pad_token_id=ids["<|endoftext|>"])
    config = Qwen2_5_VLConfig(text_config=text, vision_config=FULL_VISION, image_token_id=ids["<|image_pad|>"],
                              video_token_id=ids["<|video_pad|>"], vision_start_token_id=ids["<|vision_start|>"],
                              vision_end_token_id=ids["<|vision_end|>"])
    torch.manual_seed(0)
    with torch.device("cuda"):
        model = Qwen2_5_VLForConditionalGeneration(config).to(torch.bfloat16)
    model.generation_config = GenerationConfig(eos_token_id=ids["<|im_end|>"], pad_token_id=ids["<|endoftext|>"])
    model.save_pretrained(dest, max_shard_size="4GB")
    tokenizer.save_pretrained(dest)
    print(f"wrote {dest}: {sum(p.numel() for p in model.parameters()) / 1e9:.2f} B parameters")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
