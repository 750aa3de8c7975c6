"""The training forward: vision tower -> video embeddings in the placeholders -> LLM -> answer loss.

Spelled out with the model's own pieces (`get_video_features`, `get_rope_index`, the language model,
`lm_head`) instead of one `model(...)` call, for two reasons: stage B runs the tower under `no_grad`
(frozen) while the LLM trains, and the logits are computed only at the answer positions (a 64K-token
sequence needs ~10 of them). Positions are the engine's: M-RoPE from `get_rope_index` with
`mm_token_type_ids` (2 on video tokens) and the real `second_per_grid_ts`.

    loss, per_target = answer_loss(model, sample, train_tower=True)
"""
import torch
import torch.nn.functional as F

from omnivideo.train.sparse_attention import note_text_rows


def video_embeddings(model, video, device, train_tower: bool) -> torch.Tensor:
    """[num_visual_tokens, hidden] from VideoInputs `video` (grad only when `train_tower`)."""
    pv = video.pixel_values_videos.to(device, non_blocking=True)
    grid = video.video_grid_thw.to(device)
    with torch.set_grad_enabled(train_tower and torch.is_grad_enabled()):
        out = model.model.get_video_features(pv, grid)
        return torch.cat(out.pooler_output, dim=0)


def mrope_positions(model, input_ids: torch.Tensor, video, video_token_id: int) -> torch.Tensor:
    """int64 [3, 1, L] M-RoPE positions of `input_ids` [1, L], as the engine computes them."""
    types = (input_ids == video_token_id).to(torch.int64) * 2
    positions, _ = model.model.get_rope_index(
        input_ids, mm_token_type_ids=types, video_grid_thw=video.video_grid_thw.to(input_ids.device),
        second_per_grid_ts=video.second_per_grid_ts.to(input_ids.device))
    return positions


def hidden_states(model, input_ids: torch.Tensor, embeds: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
    """Final hidden states [1, L, hidden] of the LLM with `embeds` [N, hidden] in the video placeholders."""
    video_token_id = model.config.video_token_id
    x = model.model.get_input_embeddings()(input_ids)
    mask = (input_ids == video_token_id).unsqueeze(-1)
    assert int(mask.sum()) == embeds.shape[0], (int(mask.sum()), embeds.shape)
    x = x.masked_scatter(mask, embeds.to(x.dtype))
    note_text_rows(model, ~mask[..., 0])        # training-aware sparsity keeps text blocks dense (no-op if off)
    out = model.model.language_model(inputs_embeds=x, position_ids=positions, use_cache=False)
    return out.last_hidden_state


def answer_loss(model, sample, train_tower: bool, device=None, embeds: torch.Tensor | None = None):
    """(mean cross-entropy over the sample's target tokens, per-target losses float32 [T], detached).

    `embeds`: precomputed video embeddings (stage B's frozen tower); computed here when None.
    """
    device = device or next(model.parameters()).device
    ids = sample.input_ids.to(device).unsqueeze(0)
    if embeds is None:
        embeds = video_embeddings(model, sample.video, device, train_tower)
    positions = mrope_positions(model, ids, sample.video, model.config.video_token_id)
    h = hidden_states(model, ids, embeds, positions)
    targets = sample.target_mask.to(device).nonzero().squeeze(1)      # positions whose token is predicted
    logits = model.lm_head(h[0, targets - 1])                          # from the position before
    losses = F.cross_entropy(logits.float(), ids[0, targets], reduction="none")
    return losses.mean(), losses.detach()
