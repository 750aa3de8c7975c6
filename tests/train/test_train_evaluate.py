"""Held-out evaluation: cached greedy decoding equals full recomputation; the report's arithmetic."""
import torch
from train_testkit import CLIPS, TINY, tokenizer_and_chat

from omnivideo.synth.questions import Question
from omnivideo.synth.report import bucket_name, prior_accuracy, summarise
from omnivideo.train.evaluate import answer_questions, evaluate
from omnivideo.train.forward import hidden_states, mrope_positions, video_embeddings
from omnivideo.train.model import build_model
from omnivideo.train.sample import EVAL_SEED_BASE, draw_spec, render_video


def _greedy_without_cache(model, chat, video, question, steps=6):
    ids = chat.prefix_ids(video.num_visual_tokens) + chat.first_turn_ids(question)
    embeds = video_embeddings(model, video, "cpu", train_tower=False)
    out = []
    for _ in range(steps):
        t = torch.tensor([ids])
        h = hidden_states(model, t, embeds, mrope_positions(model, t, video, model.config.video_token_id))
        token = int(model.lm_head(h[0, -1]).argmax())
        if token in chat.stop_ids:
            break
        out.append(token)
        ids.append(token)
    return chat.tokenizer.decode(out)


@torch.no_grad()
def test_cached_decoding_equals_full_recomputation():
    tok, chat = tokenizer_and_chat()
    model = build_model(TINY, tok, seed=9).eval()
    with torch.no_grad():   # a random model stops late: make the stop token likely after ~3 tokens
        model.lm_head.weight[chat.stop_ids[0]] *= 0.0
    video = render_video(draw_spec(EVAL_SEED_BASE + 1, CLIPS), CLIPS)
    questions = ["What colour is the star?", "When does the ring first appear?"]
    cached = answer_questions(model, chat, video, questions, max_new_tokens=6)
    assert cached == [_greedy_without_cache(model, chat, video, q) for q in questions]
    assert all(isinstance(a, str) and a for a in cached)


def test_evaluate_reports_every_kind_with_its_prior():
    tok, _ = tokenizer_and_chat()
    model = build_model(TINY, tok, seed=2)
    report = evaluate(model, tok, CLIPS, seeds=range(EVAL_SEED_BASE, EVAL_SEED_BASE + 3))
    assert set(report["kinds"]) >= {"needle", "count", "grounding"}
    for stats in report["kinds"].values():
        assert 0 <= stats["accuracy"] <= 1 and 0 < stats["prior"] <= 1 and stats["n"] > 0
    assert report["questions"] == sum(s["n"] for s in report["kinds"].values())


def test_prior_and_buckets():
    qs = [Question("count", "q", str(k), k) for k in (1, 1, 2, 3)]
    assert prior_accuracy(qs) == 0.5
    times = [Question("grounding", "q", "", t) for t in (10, 12, 30, 50)]
    assert prior_accuracy(times) == 0.5      # a constant 10, 11 or 12 is within 2 s of two of them
    assert bucket_name(10) == "0s-15s" and bucket_name(100) == "1m-4m" and bucket_name(2000) == ">16m"
    rows = [(10, qs[0], "1", True), (10, qs[2], "1", False), (100, times[0], "[00:10]", True)]
    report = summarise(rows)
    assert report["kinds"]["count"]["accuracy"] == 0.5 and report["buckets"]["1m-4m"]["grounding"]["n"] == 1
