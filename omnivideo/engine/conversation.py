"""A conversation's model state: the KV cache of one chat about one video and the token ids it holds.

    conv = engine.ingest(prefix_ids, video_inputs)        # or engine.conversation_from_prefix(...)
    conv.length, conv.prefix_len, conv.ids, conv.stats
"""
from dataclasses import dataclass, field


@dataclass
class Conversation:
    """Model state of one chat about one video: the cache and the token ids it holds.

    `cache` is an OmniCache (device) or a HostKVCache (host memory, streamed per layer); `ids` are the
    tokens already in the cache; `pending` is the last answer's tail that was generated but not fed back
    (empty after a stop token, which the next turn's separator replaces); `rope_delta` turns a text
    index into its M-RoPE position after the video prefix.
    """
    cache: object
    rope_delta: int
    prefix_len: int
    ids: list[int] = field(default_factory=list)
    pending: list[int] = field(default_factory=list)
    stats: dict = field(default_factory=dict)

    @property
    def length(self) -> int:
        return len(self.ids)
