"""GPU probe for issue 7's end-to-end ingest (a diagnostic, not a benchmark: `bench ingest` makes the claims).

The 1080p file of `.carry/ingest_1080p.mp4` through the pipelined ingest with several reader counts and
segment sizes (segment = vision chunk, in frame groups), against the sequential path, on one random 7B.

    python scripts/gpu/ingest_probe.py out.json
"""
import json
import sys
from pathlib import Path

import torch

from omnivideo.engine.engine import Engine, EngineConfig
from omnivideo.engine.prefill.sparse_prefill import PRESETS
from omnivideo.engine.fused.vision_tower import VISION_ATTN_NAME, set_vision_attention
from omnivideo.bench.random_model import random_model
from omnivideo.bench.ingest.e2e import run_e2e
from omnivideo.app.video import SamplingConfig

VIDEO = Path(".carry/ingest_1080p.mp4")
loaded = random_model("7b", torch.device("cuda"), "nf4", full_vision=True)
set_vision_attention(loaded.model, VISION_ATTN_NAME)
sampling, question = SamplingConfig(fps=2.0, max_frames=96), [200 + i for i in range(16)]
rows = []
for mode, workers, groups in [("warm-up", 4, 16), ("pipelined", 4, 16), ("sequential", 4, 16), ("pipelined", 1, 16),
                              ("pipelined", 2, 8), ("pipelined", 4, 4), ("pipelined", 1, 4), ("pipelined", 2, 4),
                              ("sequential", 1, 16)]:
    engine = Engine(loaded, EngineConfig(vision_chunk_groups=groups, sparse=PRESETS["balanced"]))
    r = run_e2e(engine, VIDEO, sampling, question, pipelined=mode != "sequential", workers=workers)
    row = {"mode": mode, "workers": workers, "segment_groups": groups,
           **{k: r[k] for k in ("ttft_s", "decode_end_s", "decode_overlapped_with_device_s", "busy_s")}}
    rows.append(row)
    print(json.dumps(row), flush=True)
Path(sys.argv[1] if len(sys.argv) > 1 else "ingest_probe.json").write_text(json.dumps(rows, indent=1))
