"""Training and evaluation samples, built exactly as the app builds its inputs at inference.

One sample = one synthetic video + all (or some) of its questions as a multi-turn chat:

    ids = ChatFormat.prefix_ids(N)                     # system + user + <|vision_start|> N x <|video_pad|> <|vision_end|>
        + first_turn_ids(q1) + answer1                  # q1 + "<|im_end|>\\n<|im_start|>assistant\\n" + a1
        + next_turn_ids(q2) + answer2 + ...             # "<|im_end|>\\n<|im_start|>user\\n" + q2 + ... (the
        + <|im_end|>                                    #  separator starts with the stop token after a1)

The loss is on each answer's tokens and on the stop token that follows it. The video side is the app's
too: `plan_sampling` (qwen-vl-utils rules: 2 fps, <= 768 frames, smart_resize) on the VideoInfo a
file of the spec would have, frames rendered directly at the planned timestamps (no file), then
`frames_to_inputs` (pixel_values_videos, video_grid_thw, second_per_grid_ts).

    data = DataConfig(frame_size=224, min_seconds=7, max_seconds=16)
    s = make_sample(seed=12, cfg=data, chat=ChatFormat(tok, system=SYSTEM_PROMPT))
    s.input_ids.shape, s.target_mask.sum(), s.video.video_grid_thw
"""
import math
from dataclasses import dataclass

import numpy as np
import torch

from omnivideo.app.video.info import VideoInfo
from omnivideo.app.video.processor import VideoInputs, frames_to_inputs
from omnivideo.app.video.sampling import SamplingConfig, plan_sampling
from omnivideo.errors import ConfigError
from omnivideo.synth.questions import Question, make_questions, training_questions
from omnivideo.synth.render import render_frames
from omnivideo.synth.scene import MAX_CLOCK_S, MIN_DURATION_S, VideoSpec, make_spec
from omnivideo.train.augment import augment_frames
from omnivideo.synth.heldout import EVAL_SEED_BASE  # noqa: F401  (held-out seeds from here on; training below)

FILE_FPS = 10.0          # the frame rate a written file of the spec would have (synth.writer default)


@dataclass(frozen=True, slots=True)
class DataConfig:
    """Which videos a stage sees. Lengths are drawn log-uniformly in [min_seconds, max_seconds].

    frame_size: side of the square frames (448 = the app's size; 224 = reduced-scale, 64 tokens per pair).
    fps / max_frames: the app's sampling (SamplingConfig); min_pixels is lowered for frames under 448.
    clock_offset_prob: share of videos whose clock starts at a random mm:ss (teaches every clock digit on
        short clips; the answer is always what the clock shows).
    max_turns: questions per sample (multi-turn), None = all of the video's questions.
    dense: also ask the training-only questions (questions.training_questions: grounding and count for
        everything shown, "What shape is the red object?", the whole timeline last).
    order_pairs: with `dense`, this many extra order questions over the shapes shown, asked before every
        other turn: a grounding answer earlier in the sample would let "which first?" be read off the
        text, a shortcut that held-out questions (asked alone) do not offer. 0 = stage A's recipe.
    """
    frame_size: int = 448
    min_seconds: float = 7.0
    max_seconds: float = 32.0
    fps: float = 2.0
    max_frames: int = 768
    clock_offset_prob: float = 0.0
    augment: float = 1.0
    max_turns: int | None = None
    dense: bool = True
    order_pairs: int = 0

    def __post_init__(self):
        if self.frame_size % 28 or self.frame_size < 112:
            raise ConfigError(f"frame_size must be a multiple of 28 and >= 112, got {self.frame_size}")
        if not MIN_DURATION_S <= self.min_seconds <= self.max_seconds <= MAX_CLOCK_S:
            raise ConfigError(f"need {MIN_DURATION_S} <= min_seconds <= max_seconds <= {MAX_CLOCK_S}, "
                              f"got {self.min_seconds}, {self.max_seconds}")
        if not 0 <= self.clock_offset_prob <= 1:
            raise ConfigError(f"clock_offset_prob must be in [0, 1], got {self.clock_offset_prob}")
        if self.max_turns is not None and self.max_turns < 1:
            raise ConfigError(f"max_turns must be >= 1, got {self.max_turns}")
        if self.order_pairs < 0:
            raise ConfigError(f"order_pairs must be >= 0, got {self.order_pairs}")

    def sampling(self) -> SamplingConfig:
        pixels = self.frame_size * self.frame_size
        return SamplingConfig(fps=self.fps, max_frames=self.max_frames, min_pixels=min(pixels, 128 * 28 * 28),
                              max_pixels=max(pixels, 768 * 28 * 28))

    def tokens_per_pair(self) -> int:
        return (self.frame_size // 28) ** 2


@dataclass(frozen=True, slots=True, eq=False)
class Sample:
    """input_ids int64 [L]; target_mask bool [L] (True where the token is predicted from the one before);
    target_kinds: the question kind of each target in order ("stop" for stop tokens); video: the app's
    VideoInputs; questions in conversation order."""
    seed: int
    spec: VideoSpec
    video: VideoInputs
    questions: tuple[Question, ...]
    input_ids: torch.Tensor
    target_mask: torch.Tensor
    target_kinds: tuple[str, ...]
    token_labels: torch.Tensor | None = None    # int64 [num_visual_tokens, 9] (omnivideo.train.aux), stage A


def video_info(spec: VideoSpec) -> VideoInfo:
    """The VideoInfo a `synth.write_video(spec, fps=FILE_FPS)` file probes to."""
    count = int(round(spec.duration_s * FILE_FPS))
    return VideoInfo(path=f"synth:{spec.seed}", duration_s=count / FILE_FPS, fps=FILE_FPS, frame_count=count,
                     width=spec.size, height=spec.size, codec="synthetic")


def draw_spec(seed: int, cfg: DataConfig) -> VideoSpec:
    """The video of `seed` under `cfg`: its length and clock offset drawn from the seed."""
    rng = np.random.default_rng([seed, 0x5EED])
    lo, hi = math.log(cfg.min_seconds), math.log(cfg.max_seconds)
    duration = int(round(math.exp(rng.uniform(lo, hi))))
    offset = 0
    if rng.random() < cfg.clock_offset_prob:
        offset = int(rng.integers(0, MAX_CLOCK_S + 1 - duration))
    return make_spec(seed, duration, size=cfg.frame_size, clock_offset_s=offset)


def render_video(spec: VideoSpec, cfg: DataConfig, rng: np.random.Generator | None = None) -> VideoInputs:
    """Plan as the app does, render at the planned times, (augment,) and turn into model inputs."""
    plan = plan_sampling(video_info(spec), cfg.sampling())
    assert (plan.resized_height, plan.resized_width) == (spec.size, spec.size), plan
    frames = render_frames(spec, plan.timestamps_s)
    if rng is not None and cfg.augment > 0:
        frames = augment_frames(frames, rng, cfg.augment)
    return frames_to_inputs(frames, list(plan.timestamps_s))


def encode_answer(tokenizer, answer: str) -> list[int]:
    return tokenizer(answer, add_special_tokens=False)["input_ids"]


def conversation(chat, num_video_tokens: int, turns: list[tuple[str, str]]) -> tuple[list[int], list[bool]]:
    """Token ids of a whole chat [(question, answer), ...] and which ids are training targets."""
    ids = chat.prefix_ids(num_video_tokens)
    mask = [False] * len(ids)
    stop = chat.tokenizer.convert_tokens_to_ids("<|im_end|>")
    for i, (question, answer) in enumerate(turns):
        turn = chat.first_turn_ids(question) if i == 0 else chat.next_turn_ids(question)
        turn_mask = [False] * len(turn)
        if i > 0:
            assert turn[0] == stop, "the separator must open with the stop token"
            turn_mask[0] = True   # the stop token that ends the previous answer is the separator's first id
        ids += turn
        mask += turn_mask
        answer_ids = encode_answer(chat.tokenizer, answer)
        ids += answer_ids
        mask += [True] * len(answer_ids)
    ids.append(stop)
    mask.append(True)
    return ids, mask


def make_sample(seed: int, cfg: DataConfig, chat, augment: bool = True, labels: bool = False) -> Sample:
    """Sample `seed` (deterministic): its video, its questions in a seed-shuffled order, ids and targets."""
    spec = draw_spec(seed, cfg)
    rng = np.random.default_rng([seed, 0xA06])
    video = render_video(spec, cfg, rng if augment else None)
    questions = training_questions(spec, order_pairs_n=cfg.order_pairs) if cfg.dense else make_questions(spec)
    last = [q for q in questions if q.kind == "timeline"]     # its answer would give the others away
    rest = [q for q in questions if q.kind != "timeline"]
    order = rng.permutation(len(rest))[: cfg.max_turns or len(rest)]
    chosen = [rest[i] for i in order]
    if cfg.order_pairs:   # order turns first: no earlier answer gives their times away
        chosen = [q for q in chosen if q.kind == "order"] + [q for q in chosen if q.kind != "order"]
    chosen = tuple(chosen) + tuple(last)
    ids, mask = conversation(chat, video.num_visual_tokens, [(q.text, q.answer) for q in chosen])
    kinds = []
    for q in chosen:
        kinds += [q.kind] * len(encode_answer(chat.tokenizer, q.answer)) + ["stop"]
    assert len(kinds) == sum(mask)
    token_labels = None
    if labels:
        from omnivideo.train.aux import token_labels as compute_labels

        token_labels = compute_labels(spec, video.timestamps_s, cfg.frame_size)
    return Sample(seed=seed, spec=spec, video=video, questions=chosen, input_ids=torch.tensor(ids, dtype=torch.int64),
                  target_mask=torch.tensor(mask), target_kinds=tuple(kinds), token_labels=token_labels)
