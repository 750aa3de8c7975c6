"""Shared tiny things for the training tests: a ~100K-parameter ModelSize and 112-px short clips."""
from omnivideo.app.answer import SYSTEM_PROMPT
from omnivideo.engine.prompt import ChatFormat
from omnivideo.train.model import ModelSize
from omnivideo.train.sample import DataConfig
from omnivideo.train.tokenizer import build_synth_tokenizer

TINY = ModelSize(hidden=64, layers=2, heads=2, kv_heads=1, intermediate=128, mrope_section=(4, 6, 6),
                 vision_hidden=32, vision_depth=2, vision_heads=1, vision_intermediate=64, fullatt_blocks=(1,))
CLIPS = DataConfig(frame_size=112, min_seconds=7, max_seconds=10, max_frames=8, clock_offset_prob=0.5)


def tokenizer_and_chat():
    tok = build_synth_tokenizer()
    return tok, ChatFormat(tok, system=SYSTEM_PROMPT)
