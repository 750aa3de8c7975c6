"""Chat prompts as token ids, built from the model's own chat template.

A conversation about a video is split so that the expensive part can be stored and reused:

    prefix  = system + "<|im_start|>user\\n<|vision_start|>" + N x <|video_pad|> + "<|vision_end|>"
    turn 1  = question + "<|im_end|>\\n<|im_start|>assistant\\n"
    answer  = generated ids (the stop token is not fed back)
    turn k  = separator ("<|im_end|>\\n<|im_start|>user\\n") + question + generation header

Every piece is cut out of the template's own rendering (with sentinels), so prefix + turns +
answers is token-for-token what the template produces for the whole conversation.

    chat = ChatFormat(tokenizer)
    prefix = chat.prefix_ids(num_video_tokens=1300)
    ids = chat.first_turn_ids("What happens?")

A family whose prompt carries more than a count (Qwen3-VL: the time of every frame group as text) builds the
prefix from a `VideoLayout`: `ChatFormat(tokenizer, family=loaded.family).video_prefix_ids(layout)`.
"""
from dataclasses import dataclass

from omnivideo.engine.family import DEFAULT_FAMILY, ModelFamily, VideoLayout
from omnivideo.engine.tiny_model import QWEN_VL_CHAT_TEMPLATE

_Q = "\u2063OMNIQ\u2063"   # sentinels: invisible separators that no template or user text contains
_A = "\u2063OMNIA\u2063"


@dataclass(frozen=True)
class ChatPieces:
    prefix_text: str       # up to and including <|vision_end|>, with one <|video_pad|>
    after_question: str    # closes the user turn and opens the assistant turn
    separator: str         # closes an assistant answer and opens the next user turn


class ChatFormat:
    def __init__(self, tokenizer, system: str | None = None, family: ModelFamily = DEFAULT_FAMILY):
        self.tokenizer = tokenizer
        self.family = family
        self.template = getattr(tokenizer, "chat_template", None) or QWEN_VL_CHAT_TEMPLATE
        self.video_pad_id = tokenizer.convert_tokens_to_ids("<|video_pad|>")
        self.stop_ids = sorted({i for i in (tokenizer.convert_tokens_to_ids("<|im_end|>"),
                                            tokenizer.convert_tokens_to_ids("<|endoftext|>"),
                                            tokenizer.eos_token_id) if isinstance(i, int) and i >= 0})
        self.pieces = self._cut(system)

    def _render(self, messages) -> str:
        return self.tokenizer.apply_chat_template(messages, chat_template=self.template, tokenize=False,
                                                  add_generation_prompt=True)

    def _cut(self, system: str | None) -> ChatPieces:
        head = [{"role": "system", "content": system}] if system else []
        first = head + [{"role": "user", "content": [{"type": "video"}, {"type": "text", "text": _Q}]}]
        text = self._render(first)
        prefix, after = text.split(_Q)
        two = first + [{"role": "assistant", "content": _A}, {"role": "user", "content": _Q}]
        text2 = self._render(two)
        sep = text2.split(_A, 1)[1].split(_Q, 1)[0]
        assert prefix.count("<|video_pad|>") == 1, "the chat template must place exactly one video"
        return ChatPieces(prefix_text=prefix, after_question=after, separator=sep)

    def encode(self, text: str) -> list[int]:
        return self.tokenizer(text, add_special_tokens=False)["input_ids"]

    def video_prefix_ids(self, layout: VideoLayout) -> list[int]:
        """The question-independent prefix for a video of `layout`, as the family writes it."""
        return self.family.prefix_ids(self, layout)

    def prefix_ids(self, num_video_tokens: int) -> list[int]:
        """The question-independent prefix with the video placeholder expanded to N tokens (one run of
        pads: Qwen2.5-VL's prompt; see `video_prefix_ids` for any family)."""
        ids = self.encode(self.pieces.prefix_text)
        at = ids.index(self.video_pad_id)
        return ids[:at] + [self.video_pad_id] * num_video_tokens + ids[at + 1:]

    def first_turn_ids(self, question: str) -> list[int]:
        return self.encode(question + self.pieces.after_question)

    def next_turn_ids(self, question: str) -> list[int]:
        return self.encode(self.pieces.separator + question + self.pieces.after_question)

    def full_text(self, turns: list[tuple[str, str | None]]) -> str:
        """The template's rendering of a whole conversation [(question, answer|None), ...] (tests)."""
        msgs = []
        for i, (q, a) in enumerate(turns):
            content = [{"type": "video"}, {"type": "text", "text": q}] if i == 0 else q
            msgs.append({"role": "user", "content": content})
            if a is not None:
                msgs.append({"role": "assistant", "content": a})
        return self._render(msgs)
