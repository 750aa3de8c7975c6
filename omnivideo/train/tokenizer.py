"""The trained model's tokenizer: byte-level BPE on the synthetic world's words, one token per digit.

Built like the `tiny` model's (omnivideo/engine/tiny_model.py: the Qwen special tokens at ids 0..7,
the Qwen2-VL chat template, `<|im_end|>` as eos), but trained on what this model reads and says: the
app's system prompt, the chat roles, every question and every answer. So "red", "star" and the digits
of "[12:34]" are single tokens and an answer is 1-7 tokens; anything else still encodes (byte fallback).

    tok = build_synth_tokenizer()
    tok("[03:07]", add_special_tokens=False)["input_ids"]   # 7 ids: [ 0 3 : 0 7 ]
"""
from omnivideo.app.answer import SYSTEM_PROMPT
from omnivideo.engine.tiny_model import QWEN_VL_CHAT_TEMPLATE, SPECIAL_TOKENS
from omnivideo.synth.vocab import COLOUR_NAMES, SHAPES, all_answer_texts, all_question_texts

VOCAB_SIZE = 384


def _corpus() -> list[str]:
    roles = ["system\n" + SYSTEM_PROMPT, "user\n", "assistant\n", "You are a helpful assistant."]
    words = [" ".join(COLOUR_NAMES), " ".join(SHAPES), "colour color shape object time video frame"]
    times = [f"[{m:02d}:{s:02d}]" for m in range(0, 60, 7) for s in range(0, 60, 11)]
    # repeated so the question words win the merges over one-off strings
    return all_question_texts() * 4 + all_answer_texts() * 60 + roles * 20 + words * 8 + times


def build_synth_tokenizer(vocab_size: int = VOCAB_SIZE):
    """A PreTrainedTokenizerFast (deterministic: same merges on every machine)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token=None))
    # digits first split one by one, then byte-level: no merge can ever join two digits
    tok.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.Digits(individual_digits=True),
                                                 pre_tokenizers.ByteLevel(add_prefix_space=False)])
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=SPECIAL_TOKENS,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(_corpus(), trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|im_end|>", pad_token="<|endoftext|>")
    fast.chat_template = QWEN_VL_CHAT_TEMPLATE
    return fast
