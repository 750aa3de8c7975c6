"""Several short samples in one forward: one tower call, one right-padded LLM call.

Stage A's clips are 1.5K-8K tokens: on a GPU a batch-1 step of such a clip is launch-bound (the
same ~10^3 kernels whatever the length), so B clips in one padded forward cost about one clip's time,
where B sequential micro-batches cost B times it. The computation is the batch-1 one per sample:
the tower sees each video's own grid (attention never crosses videos or frame pairs), M-RoPE comes
from `get_rope_index` with the padding mask, and the padded keys are masked out.

    loss, per_target, embeds = batch_answer_loss(model, samples, train_tower=True)
"""
import torch
import torch.nn.functional as F

from omnivideo.train.sparse_attention import note_text_rows


def _pad(samples, pad_id: int, device) -> tuple[torch.Tensor, torch.Tensor]:
    length = max(s.input_ids.numel() for s in samples)
    ids = torch.full((len(samples), length), pad_id, dtype=torch.int64)
    mask = torch.zeros((len(samples), length), dtype=torch.int64)
    for i, s in enumerate(samples):
        ids[i, : s.input_ids.numel()] = s.input_ids
        mask[i, : s.input_ids.numel()] = 1
    return ids.to(device), mask.to(device)


def batch_video_embeddings(model, samples, device, train_tower: bool) -> torch.Tensor:
    """[sum of num_visual_tokens, hidden]: every sample's video through the tower in one call, in order."""
    pv = torch.cat([s.video.pixel_values_videos for s in samples]).to(device, non_blocking=True)
    grid = torch.cat([s.video.video_grid_thw for s in samples]).to(device)
    with torch.set_grad_enabled(train_tower and torch.is_grad_enabled()):
        return torch.cat(model.model.get_video_features(pv, grid).pooler_output, dim=0)


def batch_answer_loss(model, samples, train_tower: bool, device=None, embeds: torch.Tensor | None = None):
    """(mean over samples of each sample's mean target cross-entropy, [per-target losses per sample]).

    samples: Samples (omnivideo.train.sample); embeds: their video embeddings concatenated in order
    (computed here when None).
    """
    device = device or next(model.parameters()).device
    pad_id = model.config.text_config.pad_token_id or 0
    video_id = model.config.video_token_id
    ids, mask = _pad(samples, pad_id, device)
    if embeds is None:
        embeds = batch_video_embeddings(model, samples, device, train_tower)
    x = model.model.get_input_embeddings()(ids)
    x = x.masked_scatter((ids == video_id).unsqueeze(-1), embeds.to(x.dtype))   # row-major = sample order
    types = (ids == video_id).to(torch.int64) * 2
    grid = torch.cat([s.video.video_grid_thw for s in samples]).to(device)
    spg = torch.cat([s.video.second_per_grid_ts for s in samples]).to(device)
    positions, _ = model.model.get_rope_index(ids, mm_token_type_ids=types, video_grid_thw=grid,
                                              second_per_grid_ts=spg, attention_mask=mask)
    note_text_rows(model, ids != video_id)      # training-aware sparsity keeps text blocks dense (no-op if off)
    h = model.model.language_model(inputs_embeds=x, attention_mask=mask, position_ids=positions,
                                   use_cache=False).last_hidden_state
    rows, cols = [], []
    for i, s in enumerate(samples):
        t = s.target_mask.nonzero().squeeze(1).to(device)
        rows.append(torch.full_like(t, i))
        cols.append(t)
    rows, cols = torch.cat(rows), torch.cat(cols)
    logits = model.lm_head(h[rows, cols - 1])
    losses = F.cross_entropy(logits.float(), ids[rows, cols], reduction="none")
    per_sample = list(torch.split(losses, [int(s.target_mask.sum()) for s in samples]))
    loss = torch.stack([p.mean() for p in per_sample]).mean()
    return loss, [p.detach() for p in per_sample]
