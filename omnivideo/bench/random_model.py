"""Models and synthetic KV for the decode benchmark: random-weight Qwen2.5-VL-7B or Qwen3-VL-8B (NF4), or tiny.

The 7B is built from the public config's shapes (nothing downloaded), its language model converted
to NF4 with bitsandbytes.

Decode speed does not depend on what the weights are, only on their shapes and format, so random
weights and random KV measure it faithfully; answers are noise. The vision tower is built with one
block (decoding never runs it).

    loaded = random_model("7b", torch.device("cuda"))        # LoadedModel, NF4 language model
    loaded = random_model("qwen3-vl-8b", torch.device("cuda"))   # Qwen3-VL-8B text shapes (144 KiB KV/token)
    layers = synthetic_kv(loaded, n_tokens=32768, seed=0)    # per layer ([Hkv, N, d], [Hkv, N, d])
"""
import sys

import torch

from omnivideo.engine.attention import ATTN_NAME, register_attention
from omnivideo.engine.family import family_named
from omnivideo.engine.loading import LoadedModel
from omnivideo.engine.fused.nf4_linear import route_nf4_linears, unroute_nf4_linears
from omnivideo.engine.fused.text_mlp import fuse_text_mlp, unfuse_text_mlp
from omnivideo.engine.fused.text_norm import fuse_text_norms, unfuse_text_norms
from omnivideo.engine.fused.text_rotary import fuse_text_rotary, unfuse_text_rotary

# Qwen2.5-VL-7B-Instruct's public config.json: text shapes and special token ids.
QWEN25_VL_7B_TEXT = dict(vocab_size=152064, hidden_size=3584, intermediate_size=18944, num_hidden_layers=28,
                         num_attention_heads=28, num_key_value_heads=4, max_position_embeddings=128000,
                         rms_norm_eps=1e-6, hidden_act="silu", tie_word_embeddings=False,
                         rope_parameters={"rope_type": "default", "rope_theta": 1000000.0,
                                          "mrope_section": [16, 24, 24]})
QWEN25_VL_7B_IDS = dict(image_token_id=151655, video_token_id=151656, vision_start_token_id=151652,
                        vision_end_token_id=151653)
ONE_BLOCK_VISION = dict(depth=1, hidden_size=1280, intermediate_size=3420, num_heads=16, out_hidden_size=3584,
                        patch_size=14, temporal_patch_size=2, spatial_merge_size=2, window_size=112,
                        fullatt_block_indexes=[0], tokens_per_second=2)
# Qwen3-VL-8B-Instruct's public config.json: 36 layers, 32 query / 8 KV heads of 128, interleaved M-RoPE.
QWEN3_VL_8B_TEXT = dict(vocab_size=151936, hidden_size=4096, intermediate_size=12288, num_hidden_layers=36,
                        num_attention_heads=32, num_key_value_heads=8, head_dim=128, max_position_embeddings=262144,
                        rms_norm_eps=1e-6, hidden_act="silu",
                        rope_parameters={"rope_type": "default", "rope_theta": 5000000.0, "mrope_section": [24, 20, 20],
                                         "mrope_interleaved": True})
# Qwen3-VL-8B-Instruct's public vision_config: 27 blocks of 1152 (16 heads of 72), MLP 4304 (GELU-tanh, no
# gate), LayerNorm, DeepStack features after blocks 8 / 16 / 24, attention within frame groups only.
QWEN3_VL_8B_VISION = dict(depth=27, hidden_size=1152, intermediate_size=4304, num_heads=16, out_hidden_size=4096,
                          hidden_act="gelu_pytorch_tanh", patch_size=16, temporal_patch_size=2, spatial_merge_size=2,
                          num_position_embeddings=2304, deepstack_visual_indexes=[8, 16, 24])
QWEN3_VL_ONE_BLOCK_VISION = dict(QWEN3_VL_8B_VISION, depth=1, deepstack_visual_indexes=[0])
SIZES = ("7b", "tiny", "qwen3-vl-8b", "tiny-qwen3-vl")
# Qwen2.5-VL-7B-Instruct's public vision_config: 32 blocks, windowed attention except blocks 7/15/23/31.
FULL_VISION = dict(ONE_BLOCK_VISION, depth=32, fullatt_block_indexes=[7, 15, 23, 31])


def set_text_attention(model, text_impl: str) -> None:
    """Route the language model's attention to `text_impl` ("sdpa" for HF's baseline, ours otherwise)."""
    lm = model.model.language_model
    try:
        model.set_attn_implementation({"text_config": text_impl, "vision_config": "sdpa"})
    except (AttributeError, TypeError, ValueError):  # older transformers: set the text config directly
        pass
    if lm.config._attn_implementation != text_impl:
        lm.config._attn_implementation = text_impl
    assert lm.layers[0].self_attn.config._attn_implementation == text_impl
    # ours also gets one kernel per RMSNorm (exact), one rotary kernel per layer, our NF4 GEMV for
    # decode-sized matmuls (q|k|v and gate|up fused) and SiLU * up in one kernel;
    # transformers' baseline its own norms and bitsandbytes' matmuls
    if text_impl == ATTN_NAME:
        fuse_text_norms(model)
        fuse_text_rotary(model, sys.modules[type(model).__module__])   # the model's own modeling module
        fuse_text_mlp(model)
        route_nf4_linears(model)
    else:
        unfuse_text_norms(model)
        unfuse_text_rotary(model)
        unfuse_text_mlp(model)
        unroute_nf4_linears(model)


def quantize_nf4(module: torch.nn.Module, compute_dtype: torch.dtype, device: torch.device) -> None:
    """Replace every nn.Linear under `module` by a bitsandbytes NF4 Linear4bit (double quantization,
    blocksize 64), as `from_pretrained(quantization_config=BitsAndBytesConfig(nf4))` does."""
    import bitsandbytes as bnb

    for name, child in list(module.named_children()):
        if isinstance(child, torch.nn.Linear):
            q = bnb.nn.Linear4bit(child.in_features, child.out_features, bias=child.bias is not None,
                                  compute_dtype=compute_dtype, compress_statistics=True, quant_type="nf4",
                                  device="meta")
            q.weight = bnb.nn.Params4bit(child.weight.data, requires_grad=False, quant_type="nf4",
                                         compress_statistics=True)
            if child.bias is not None:
                q.bias = torch.nn.Parameter(child.bias.data.to(compute_dtype), requires_grad=False)
            setattr(module, name, q.to(device))  # .to quantizes the weight
        else:
            quantize_nf4(child, compute_dtype, device)


def random_model(size: str, device: torch.device, quant: str = "nf4", full_vision: bool = False) -> LoadedModel:
    """size "7b": Qwen2.5-VL-7B text shapes (bf16, NF4 language model); "tiny": the test model's config
    (fp32; NF4 through bitsandbytes' CPU path when quant="nf4"); "qwen3-vl-8b" / "tiny-qwen3-vl" the same
    for Qwen3-VL. full_vision: the 7B's whole 32-block (8B: 27-block, DeepStack 8/16/24) vision tower (bf16,
    not quantized, as `load_model` keeps it) instead of one block (decode never runs it); the tiny models
    always have their whole tower."""
    from transformers import (Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration, Qwen3VLConfig,
                              Qwen3VLForConditionalGeneration)

    from omnivideo.engine.tiny_model import (QWEN3_VL_CHAT_TEMPLATE, build_tokenizer, tiny_config,
                                             tiny_qwen3_vl_config)

    register_attention()
    family, model_class = family_named("qwen2_5_vl"), Qwen2_5_VLForConditionalGeneration
    if size == "qwen3-vl-8b":
        vision = QWEN3_VL_8B_VISION if full_vision else QWEN3_VL_ONE_BLOCK_VISION
        config = Qwen3VLConfig(text_config=QWEN3_VL_8B_TEXT, vision_config=vision, tie_word_embeddings=False,
                               **QWEN25_VL_7B_IDS)
        dtype, tokenizer = torch.bfloat16, None
        family, model_class = family_named("qwen3_vl"), Qwen3VLForConditionalGeneration
    elif size == "tiny-qwen3-vl":
        tokenizer = build_tokenizer(chat_template=QWEN3_VL_CHAT_TEMPLATE)
        config, dtype = tiny_qwen3_vl_config(tokenizer), torch.float32
        family, model_class = family_named("qwen3_vl"), Qwen3VLForConditionalGeneration
    elif size == "7b":
        vision = FULL_VISION if full_vision else ONE_BLOCK_VISION
        config = Qwen2_5_VLConfig(text_config=QWEN25_VL_7B_TEXT, vision_config=vision, **QWEN25_VL_7B_IDS)
        dtype, tokenizer = torch.bfloat16, None
    else:
        tokenizer = build_tokenizer()
        config, dtype = tiny_config(tokenizer), torch.float32
    previous = torch.get_default_dtype()
    torch.manual_seed(0)
    try:
        torch.set_default_dtype(dtype)
        with torch.device(device):
            model = model_class(config).eval()
    finally:
        torch.set_default_dtype(previous)
    if quant == "nf4":
        quantize_nf4(model.model.language_model.layers, dtype, device)
    set_text_attention(model, ATTN_NAME)
    if device.type == "cuda":
        torch.cuda.empty_cache()
    name = size if family.name == "qwen3_vl" else f"qwen2.5-vl-{size}"
    return LoadedModel(model=model, tokenizer=tokenizer, model_id=f"random-{name}", revision="random",
                       device=device, dtype=dtype, quantization=quant, family=family)


def tensor_bytes(modules) -> int:
    """Bytes of the modules' own parameters, NF4 quantization statistics (absmax, nested absmax,
    codebooks) included: what a forward of them reads."""
    total = 0
    for module in modules:
        for p in module.parameters(recurse=False):
            total += p.numel() * p.element_size()
            state = getattr(p, "quant_state", None)
            while state is not None:
                for t in (state.absmax, state.code, getattr(state, "offset", None)):
                    if isinstance(t, torch.Tensor):
                        total += t.numel() * t.element_size()
                state = getattr(state, "state2", None)
    return total


def weight_bytes_per_token(loaded: LoadedModel) -> int:
    """Bytes of weights one decode step must read: every decoder layer's tensors, the final norm and
    lm_head; one embedding row."""
    lm = loaded.model.model.language_model
    embed = lm.embed_tokens.weight
    return tensor_bytes([*lm.layers.modules(), lm.norm, loaded.model.lm_head]) + embed.shape[1] * embed.element_size()


def synthetic_kv(loaded: LoadedModel, n_tokens: int, seed: int, device: torch.device | None = None):
    """Per layer (k, v) [Hkv, N, d] of iid normal values in the model dtype, generated on `device`
    (default the model's) one layer at a time (a generator: nothing is held beyond the consumer)."""
    layers, hkv, d = loaded.family.kv_shape(loaded.text_config)
    device = device or loaded.device
    gen = torch.Generator(device=device).manual_seed(seed)
    for _ in range(layers):
        yield (torch.randn(hkv, n_tokens, d, generator=gen, device=device, dtype=loaded.dtype),
               torch.randn(hkv, n_tokens, d, generator=gen, device=device, dtype=loaded.dtype))


def kv_bytes_per_token(loaded: LoadedModel) -> int:
    """K + V bytes of one token over all layers (56 KiB for Qwen2.5-VL-7B, 144 KiB for Qwen3-VL-8B in bf16)."""
    layers, hkv, d = loaded.family.kv_shape(loaded.text_config)
    return 2 * layers * hkv * d * torch.tensor([], dtype=loaded.dtype).element_size()
