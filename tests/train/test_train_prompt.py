"""Training samples are token-for-token what the app feeds at inference, with loss only on the answers."""
import torch
from train_testkit import CLIPS, tokenizer_and_chat

from omnivideo.app.answer import SYSTEM_PROMPT
from omnivideo.synth.vocab import SHAPES
from omnivideo.train.sample import conversation, make_sample


def test_conversation_is_the_chat_template_rendering():
    tok, chat = tokenizer_and_chat()
    turns = [("What colour is the star?", "red"), ("When does the star first appear?", "[01:05]"),
             ("How many times does a red square appear?", "2")]
    ids, mask = conversation(chat, num_video_tokens=1, turns=turns)
    messages = [{"role": "system", "content": SYSTEM_PROMPT}]
    for i, (q, a) in enumerate(turns):
        content = [{"type": "video"}, {"type": "text", "text": q}] if i == 0 else q
        messages += [{"role": "user", "content": content}, {"role": "assistant", "content": a}]
    full = tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=False)
    assert full.endswith("<|im_end|>\n")
    expected_text = full[:-1]          # the app stops at <|im_end|>; the template adds a newline
    assert tok.decode(ids) == expected_text
    assert tok(expected_text, add_special_tokens=False)["input_ids"] == ids


def test_first_turn_is_the_engines_prefix_plus_first_turn_ids():
    tok, chat = tokenizer_and_chat()
    ids, _ = conversation(chat, num_video_tokens=37, turns=[("What colour is the ring?", "blue")])
    expected = chat.prefix_ids(37) + chat.first_turn_ids("What colour is the ring?")
    answer = tok("blue", add_special_tokens=False)["input_ids"]
    assert ids == expected + answer + [tok.convert_tokens_to_ids("<|im_end|>")]


def test_targets_are_the_answers_and_their_stop_tokens_only():
    tok, chat = tokenizer_and_chat()
    sample = make_sample(3, CLIPS, chat)
    ids, mask = sample.input_ids, sample.target_mask
    targets = tok.decode(ids[mask].tolist())
    expected = "".join(q.answer + "<|im_end|>" for q in sample.questions)
    assert targets == expected
    assert int((ids == chat.video_pad_id).sum()) == sample.video.num_visual_tokens
    assert len(sample.target_kinds) == int(mask.sum())


def test_samples_are_deterministic_and_timeline_comes_last():
    _, chat = tokenizer_and_chat()
    a, b = make_sample(11, CLIPS, chat), make_sample(11, CLIPS, chat)
    assert torch.equal(a.input_ids, b.input_ids)
    assert torch.equal(a.video.pixel_values_videos, b.video.pixel_values_videos)
    assert a.questions[-1].kind == "timeline"
    assert not torch.equal(a.video.pixel_values_videos.view(-1)[:100],
                           make_sample(12, CLIPS, chat).video.pixel_values_videos.view(-1)[:100])


def test_answers_are_few_tokens_and_digits_single_tokens():
    tok, _ = tokenizer_and_chat()
    for word in SHAPES + ("red", "magenta", "4"):
        assert len(tok(word, add_special_tokens=False)["input_ids"]) == 1, word
    assert [tok.decode([i]) for i in tok("[03:57]", add_special_tokens=False)["input_ids"]] == \
        ["[", "0", "3", ":", "5", "7", "]"]
    assert tok.convert_tokens_to_ids("<|video_pad|>") == 7 and tok.convert_tokens_to_ids("<|im_end|>") == 2


def test_order_pairs_are_right_answers_among_the_two_named_and_come_before_every_other_turn():
    from dataclasses import replace

    from omnivideo.synth.questions import order_pairs

    _, chat = tokenizer_and_chat()
    cfg = replace(CLIPS, min_seconds=100, max_seconds=120, order_pairs=4)
    sample = make_sample(6, cfg, chat)     # four shapes: six pairs
    kinds = [q.kind for q in sample.questions]
    n_order = kinds.count("order")
    first_seen = {e.shape for e in sample.spec.events}
    pairs = len(first_seen) * (len(first_seen) - 1) // 2
    assert pairs == 6 and n_order >= 4
    assert kinds[:n_order] == ["order"] * n_order and "order" not in kinds[n_order:]
    first = {}
    for e in sorted(sample.spec.events, key=lambda e: e.start_s):
        first.setdefault(e.shape, e.start_s)
    for q in sample.questions[:n_order]:
        a, b = q.choices
        assert q.answer in (a, b) and q.answer == min((a, b), key=first.__getitem__)
    assert len(order_pairs(sample.spec, 100)) == pairs
    # stage A's recipe (order_pairs 0): only the held-out-style order question, wherever the shuffle put it
    assert [q.kind for q in make_sample(6, replace(cfg, order_pairs=0), chat).questions].count("order") <= 1
