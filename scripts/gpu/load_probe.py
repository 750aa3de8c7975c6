import sys
from pathlib import Path
import torch
from omnivideo.engine.loading import LoadOptions, load_model
import omnivideo.engine.fused.vision_block as vb
loaded = load_model(LoadOptions(model="tiny", models_dir=Path("/tmp/ovd_models"), device=sys.argv[1], dtype="bfloat16" if sys.argv[1] == "cuda" else "float32", quant=sys.argv[2]))
v = loaded.model.model.visual
print("vision gate_proj:", type(v.blocks[0].mlp.gate_proj).__name__, v.blocks[0].mlp.gate_proj.weight.dtype,
      "fused:", all(vb.is_fused(b) for b in v.blocks),
      "lm q_proj:", type(loaded.model.model.language_model.layers[0].self_attn.q_proj).__name__)
