"""Training our own small Qwen2.5-VL on synthetic videos with known answers (see docs/training.md).

    python -m omnivideo.train.run --stage A --out runs/a              # tower + LLM, short clips (H200)
    python -m omnivideo.train.run --stage B1 --out runs/b1 --init runs/a
    python -m omnivideo.train.run --eval-only --out runs/b1 --eval-source file

Modules: config (TrainConfig, stage presets), model (ModelSize, build/export), tokenizer, sample
(one video + its questions as the app's prompt), samples (the resumable stream), forward / batch
(the loss), aux (training-only per-token heads), vision_attention (batched windows), optim,
checkpoint, trainer (the loop), evaluate (held-out accuracy), curve, run (the entry point).
"""
