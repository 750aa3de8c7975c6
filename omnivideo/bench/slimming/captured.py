"""Decode-slimming inputs from real attention: a `bench capture` file with a question turn.

The structured workload (`omnivideo.bench.workload`) is synthetic; issue 5 also accepts captured
Q/K, and only a real checkpoint can say how concentrated decode attention is. Per captured layer:
- keys / values: the prefix's, then the question's ([Hkv', N + Tq, d]);
- observation rows: the question's last `observe` queries (what `SlimSelector` sees in the engine);
- decode queries: the decoded answer tokens' queries. Each attends here to prefix + question only:
  the answer tokens before it form the decode tail, which slimming always keeps, so they are left out
  of both the dense and the slimmed attention (the error is the visual part's, as on the workload);
- visual mask: the prefix's video tokens.

    bench, inputs, workload = captured_slimming(path, SlimmingBench())   # sized to the capture
    result = run(bench, inputs, workload)
"""
from dataclasses import replace
from pathlib import Path

import torch

from omnivideo.bench.capture import load_qk
from omnivideo.bench.slimming.slimming import LayerInputs, SlimmingBench
from omnivideo.errors import ConfigError


def captured_slimming(path: Path, base: SlimmingBench) -> tuple[SlimmingBench, list[LayerInputs], str]:
    """(the bench sized to the capture, its LayerInputs per captured layer, a workload description)."""
    qk = load_qk(path)
    meta = qk.meta
    if qk.turns is None or meta.get("answer_tokens", 0) < 1:
        raise ConfigError(f"{path} has no decoded answer: capture it with --question and --answer-tokens N")
    tq, answer = meta["question_tokens"], meta["answer_tokens"]
    visual = torch.cat([~qk.text_mask, torch.zeros(tq, dtype=torch.bool)])
    inputs = []
    for layer, (q, k, v) in sorted(qk.layers.items()):
        q_turn, k_turn, v_turn = qk.turns[layer]
        inputs.append(LayerInputs(k=torch.cat([k, k_turn[:, :tq]], 1).float(),
                                  v=torch.cat([v, v_turn[:, :tq]], 1).float(),
                                  q_obs=q_turn[:, max(0, tq - base.observe):tq].float(),
                                  q_dec=q_turn[:, tq:tq + base.decode_queries].float(), visual_mask=visual))
    hq, hkv, d = q.shape[0], k.shape[0], k.shape[2]
    decode_queries = min(base.decode_queries, answer)
    # the visual tokens as `frames` x 1 patch: the sweep and its summary only count them
    bench = replace(base, num_q_heads=hq, num_kv_heads=hkv, head_dim=d, frames=int((~qk.text_mask).sum()),
                    patches=1, layers=len(inputs), observe=min(base.observe, tq), decode_queries=decode_queries,
                    kernel_queries=min(base.kernel_queries, decode_queries))
    workload = (f"captured Q/K of {meta['model']} ({meta.get('quantization')}) on {meta['video']}: layers "
                f"{meta['layers']}, question {meta['question']!r} ({tq} tokens), {answer} decoded tokens")
    return bench, inputs, workload
