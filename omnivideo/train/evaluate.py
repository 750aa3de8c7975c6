"""Held-out accuracy: greedy answers to every question of unseen videos, per kind and per length bucket.

Each video is prefilled once (prefix with the video) and each question is asked as a first turn on a
copy of that cache, as `ask` does in the app. Held-out seeds start at EVAL_SEED_BASE, disjoint from
every training seed. `source="file"` writes each video with `synth.write_video` (H.264) and samples it
back through the app's reader (omnivideo.app.video.frames.sample_video): codec and decoder included.
Next to each accuracy: `prior`, the accuracy of the best constant answer on the same questions (what a
model that ignores the video can reach).

    report = evaluate(model, tokenizer, DataConfig(frame_size=224), seeds=range(EVAL_SEED_BASE, EVAL_SEED_BASE + 32))
    report["kinds"]["needle"]   # {"accuracy": 0.94, "n": 64, "prior": 0.22}
"""
import copy
import inspect
import tempfile
from pathlib import Path

import torch

from omnivideo.app.answer import SYSTEM_PROMPT
from omnivideo.engine.prompt import ChatFormat
from omnivideo.synth.report import summarise
from omnivideo.synth.score import score
from omnivideo.train.forward import mrope_positions, video_embeddings
from omnivideo.train.sample import DataConfig, draw_spec, render_video

def _forward_text(model, embeds, positions, cache):
    """Language model over `embeds` [1, n, hidden] at `positions` [3, 1, n]; (last hidden [hidden], cache)."""
    lm = model.model.language_model
    name = "cache" if "cache" in inspect.signature(lm.forward).parameters else "past_key_values"
    out = lm(inputs_embeds=embeds, position_ids=positions, use_cache=True, **{name: cache})
    new_cache = getattr(out, "cache", None) or getattr(out, "past_key_values", None)
    return out.last_hidden_state[0, -1], new_cache


@torch.inference_mode()
def answer_questions(model, chat: ChatFormat, video, questions: list[str], max_new_tokens: int = 12) -> list[str]:
    """Greedy answers, each question a first turn after the same video prefix (prefilled once)."""
    device = next(model.parameters()).device
    prefix = chat.prefix_ids(video.num_visual_tokens)
    ids = torch.tensor([prefix], device=device)
    embeds = video_embeddings(model, video, device, train_tower=False)
    types = (ids == model.config.video_token_id).to(torch.int64) * 2
    positions, delta = model.model.get_rope_index(
        ids, mm_token_type_ids=types, video_grid_thw=video.video_grid_thw.to(device),
        second_per_grid_ts=video.second_per_grid_ts.to(device))
    x = model.model.get_input_embeddings()(ids)
    x = x.masked_scatter((ids == model.config.video_token_id).unsqueeze(-1), embeds.to(x.dtype))
    _, prefix_cache = _forward_text(model, x, positions, None)
    delta = int(delta.reshape(-1)[0])
    stops = set(chat.stop_ids)
    answers = []
    for question in questions:
        cache, new, out, length = copy.deepcopy(prefix_cache), chat.first_turn_ids(question), [], len(prefix)
        for _ in range(max_new_tokens):
            pos = (torch.arange(length, length + len(new), device=device) + delta).view(1, 1, -1).expand(3, 1, -1)
            emb = model.model.get_input_embeddings()(torch.tensor([new], device=device))
            hidden, cache = _forward_text(model, emb, pos, cache)
            length += len(new)
            token = int(model.lm_head(hidden).argmax())
            if token in stops:
                break
            out.append(token)
            new = [token]
        answers.append(chat.tokenizer.decode(out))
    return answers


def _sampled_file(spec, cfg: DataConfig, folder: Path):
    from omnivideo.app.video.frames import sample_video
    from omnivideo.app.video.processor import to_model_inputs
    from omnivideo.synth.writer import write_video

    written = write_video(spec, folder / f"{spec.seed}.mp4")
    video = to_model_inputs(sample_video(written.path, cfg.sampling()))
    written.path.unlink()
    return video


def evaluate(model, tokenizer, cfg: DataConfig, seeds, source: str = "render", progress=None,
             clock_offset_prob: float = 0.0) -> dict:
    """Accuracy per kind and per (length bucket, kind) on the videos of `seeds` (held-out seeds).

    The videos are the app's (no augmentation, no clock offset) unless `clock_offset_prob` > 0: with
    offsets, short clips' clocks start anywhere in 00:00-59:59, so grounding needs reading the clock
    (on short clips without them, guessing "[00:03]" is often within 2 s: see the report's prior).
    """
    from dataclasses import replace

    from omnivideo.synth.questions import make_questions

    assert source in ("render", "file"), source
    cfg = replace(cfg, clock_offset_prob=clock_offset_prob, augment=0.0)
    chat = ChatFormat(tokenizer, system=SYSTEM_PROMPT)
    was_training = model.training
    model.eval()
    rows = []
    with tempfile.TemporaryDirectory(prefix="omnivideo-eval-") as tmp:
        for seed in seeds:
            spec = draw_spec(seed, cfg)
            video = render_video(spec, cfg) if source == "render" else _sampled_file(spec, cfg, Path(tmp))
            questions = make_questions(spec)
            for q, a in zip(questions, answer_questions(model, chat, video, [q.text for q in questions])):
                rows.append((spec.duration_s, q, a, score(q, a)))
            if progress is not None:
                progress(1)
    model.train(was_training)
    return summarise(rows)
