"""Incremental detokenization: turn a growing list of token ids into text pieces to stream.

Byte-level BPE can split one character over several tokens, so a piece is held back while the
decoded text ends in an incomplete character (U+FFFD).

    detok = Detokenizer(tokenizer)
    for tok in tokens: print(detok.push(tok), end="")
    print(detok.flush())
"""


class Detokenizer:
    def __init__(self, tokenizer):
        self.tokenizer = tokenizer
        self.ids: list[int] = []
        self.emitted = 0  # characters of the decoded text already returned

    def _text(self) -> str:
        return self.tokenizer.decode(self.ids, skip_special_tokens=True)

    def push(self, token_id: int) -> str:
        """Add one token; return the newly complete text (may be empty)."""
        self.ids.append(int(token_id))
        text = self._text()
        if text.endswith("\ufffd"):
            return ""
        piece = text[self.emitted:]
        self.emitted = len(text)
        return piece

    def flush(self) -> str:
        text = self._text()
        piece = text[self.emitted:]
        self.emitted = len(text)
        return piece

    @property
    def text(self) -> str:
        return self._text()
