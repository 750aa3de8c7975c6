"""Chat prompts cut from the template equal the template's rendering of the whole conversation."""
from omnivideo.engine.prompt import ChatFormat


def test_prefix_and_turns_tokenize_like_the_whole_template(tiny):
    tok = tiny.tokenizer
    chat = ChatFormat(tok)
    prefix = chat.prefix_ids(num_video_tokens=1)
    a1 = tok("the quick brown fox", add_special_tokens=False)["input_ids"]
    ids = prefix + chat.first_turn_ids("What happens?") + a1 + chat.next_turn_ids("And then?")
    text = chat.full_text([("What happens?", "the quick brown fox"), ("And then?", None)])
    assert ids == tok(text, add_special_tokens=False)["input_ids"]


def test_video_placeholder_expands_to_n_tokens(tiny):
    chat = ChatFormat(tiny.tokenizer, system="Cite times as [mm:ss].")
    ids = chat.prefix_ids(num_video_tokens=37)
    assert ids.count(chat.video_pad_id) == 37
    assert "Cite times" in tiny.tokenizer.decode(ids)
    assert chat.stop_ids and tiny.tokenizer.convert_tokens_to_ids("<|im_end|>") in chat.stop_ids
