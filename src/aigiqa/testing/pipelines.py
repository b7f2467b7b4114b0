"""Tiny random Stable Diffusion pipelines for tests and benchmarks (no download).

A 2-block ``UNet2DConditionModel``, a 4-level ``AutoencoderKL`` (factor 8) with 16 channels, a
2-layer ``CLIPTextModel`` and a ``CLIPTokenizer`` made from the CLIP BPE vocabulary open_clip
ships, assembled into a ``StableDiffusionPipeline`` and saved as a diffusers folder. The
SDXL-style one has SDXL's parts: two text encoders (``CLIPTextModel`` and
``CLIPTextModelWithProjection``, their hidden states concatenated for the cross-attention, the
second's pooled projection and the size/crop "time ids" added to the time embedding:
``addition_embed_type="text_time"``) in a ``StableDiffusionXLPipeline``. A 64x64
image takes a few hundred milliseconds per step on a CPU. Needs diffusers, transformers and
open_clip (``aigiqa[dev]``).
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["clip_tokenizer", "tiny_sd_pipeline", "tiny_sdxl_pipeline"]


def clip_tokenizer():
    """transformers' CLIPTokenizer from open_clip's bundled vocabulary (77 tokens)."""
    import open_clip
    import transformers

    tok = open_clip.get_tokenizer("ViT-H-14")
    merges = [tuple(m) for m in sorted(tok.bpe_ranks, key=tok.bpe_ranks.get)]
    vocab = dict(tok.encoder)
    vocab["<|startoftext|>"] = vocab.pop("<start_of_text>")  # open_clip renames the specials
    vocab["<|endoftext|>"] = vocab.pop("<end_of_text>")
    return transformers.CLIPTokenizer(vocab=vocab, merges=merges, model_max_length=77)


def tiny_sd_pipeline(folder: str | Path, *, seed: int = 0, decoder_bias: float | None = None,
                     tokenizer=None) -> Path:
    """Save a tiny random StableDiffusionPipeline (DDIM scheduler) in ``folder``; returns it.

    ``decoder_bias``: set the VAE decoder's last convolution to zero weights and this bias
    (``-10.0`` gives all-black images, ``float('nan')`` NaN outputs) to test failure handling.
    """
    import torch
    import transformers
    from diffusers import DDIMScheduler, StableDiffusionPipeline, UNet2DConditionModel

    torch.manual_seed(seed)
    unet = UNet2DConditionModel(
        sample_size=8, in_channels=4, out_channels=4, layers_per_block=1,
        block_out_channels=(32, 64), down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"), cross_attention_dim=32,
        attention_head_dim=4, norm_num_groups=32)
    vae = _tiny_vae()
    text = transformers.CLIPTextModel(transformers.CLIPTextConfig(
        hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
        vocab_size=49408, max_position_embeddings=77, projection_dim=32))
    if decoder_bias is not None:
        with torch.no_grad():
            vae.decoder.conv_out.weight.zero_()
            vae.decoder.conv_out.bias.fill_(decoder_bias)
    scheduler = DDIMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
                              clip_sample=False, set_alpha_to_one=False, steps_offset=1)
    pipe = StableDiffusionPipeline(
        vae=vae, text_encoder=text, tokenizer=tokenizer or clip_tokenizer(), unet=unet,
        scheduler=scheduler, safety_checker=None, feature_extractor=None,
        requires_safety_checker=False)
    pipe.save_pretrained(folder)
    return Path(folder)


def _tiny_vae():
    from diffusers import AutoencoderKL

    return AutoencoderKL(
        in_channels=3, out_channels=3, down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4, block_out_channels=(16, 16, 16, 16),
        latent_channels=4, layers_per_block=1, norm_num_groups=16, sample_size=64)


def tiny_sdxl_pipeline(folder: str | Path, *, seed: int = 0, tokenizer=None) -> Path:
    """Save a tiny random StableDiffusionXLPipeline (Euler scheduler) in ``folder``."""
    import torch
    import transformers
    from diffusers import EulerDiscreteScheduler, StableDiffusionXLPipeline, UNet2DConditionModel

    torch.manual_seed(seed)
    time_dim, pooled = 8, 32
    unet = UNet2DConditionModel(
        sample_size=8, in_channels=4, out_channels=4, layers_per_block=1,
        block_out_channels=(32, 64), down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"), cross_attention_dim=64,
        attention_head_dim=(2, 4), use_linear_projection=True, norm_num_groups=32,
        addition_embed_type="text_time", addition_time_embed_dim=time_dim,
        projection_class_embeddings_input_dim=6 * time_dim + pooled)  # 6 time ids + pooled

    def config() -> transformers.CLIPTextConfig:
        return transformers.CLIPTextConfig(
            hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
            vocab_size=49408, max_position_embeddings=77, projection_dim=pooled)

    tok = tokenizer or clip_tokenizer()
    scheduler = EulerDiscreteScheduler(beta_start=0.00085, beta_end=0.012,
                                       beta_schedule="scaled_linear", steps_offset=1,
                                       timestep_spacing="leading")
    pipe = StableDiffusionXLPipeline(
        vae=_tiny_vae(), text_encoder=transformers.CLIPTextModel(config()),
        text_encoder_2=transformers.CLIPTextModelWithProjection(config()), tokenizer=tok,
        tokenizer_2=tok, unet=unet, scheduler=scheduler, add_watermarker=False)
    pipe.save_pretrained(folder)
    return Path(folder)
