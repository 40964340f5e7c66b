"""A tiny random Wan2.2-style weights folder, for tests and CPU smoke runs.

The configurations are the test-sized ones diffusers uses for its own Wan
tests (VAE: TI2V variant, 48 channels, 16x spatial / 4x temporal; DiT: 2
layers, 2 heads of 12), saved with the real ``save_pretrained`` so that the
real loader, and nothing else, reads them back. Optional parts: a tiny UMT5
text encoder with an offline word-level tokenizer, precomputed prompt
embeddings, a tiny Depth Anything, a tiny SegFormer, a memory branch and a
LoRA. Nothing is downloaded. Outputs are noise: this proves the code path,
not the model.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

TINY_VAE = dict(
    base_dim=3, z_dim=48, dim_mult=[1, 1, 1, 1], num_res_blocks=1, temperal_downsample=[False, True, True],
    in_channels=12, out_channels=12, is_residual=True, patch_size=2, scale_factor_spatial=16, scale_factor_temporal=4,
)
TINY_TRANSFORMER = dict(
    patch_size=(1, 2, 2), num_attention_heads=2, attention_head_dim=12, in_channels=48, out_channels=48, text_dim=32,
    freq_dim=256, ffn_dim=32, num_layers=2, cross_attn_norm=True, qk_norm="rms_norm_across_heads", rope_max_seq_len=32,
)
# Wan2.2-TI2V-5B-Diffusers' scheduler: UniPC, flow prediction, shift 5.
UNIPC_FLOW = dict(prediction_type="flow_prediction", use_flow_sigmas=True, flow_shift=5.0, num_train_timesteps=1000,
                  solver_order=2)
TINY_VOCAB = ("a room with wooden floor white walls and window chair table lamp sofa kitchen bed door light dark "
              "corridor office living bathroom red blue green").split()
SEGMENTATION_LABELS = {0: "wall", 1: "floor", 2: "sky", 3: "person", 4: "car"}


def build_tiny_wan_folder(path, seed: int = 0, image_size=(64, 64), num_inference_steps: int = 2,
                          scheduler: str = "unipc", prompt_embeds: bool = True, text_encoder: bool = False,
                          depth: bool = True, segmentation: bool = False, memory_branch: str | None = None,
                          lora_rank: int | None = None) -> Path:
    """Write a tiny random Wan2.2 folder at ``path`` and return it.

    scheduler: "unipc" (flow prediction, as Wan2.2) or "euler" (FlowMatchEuler).
    memory_branch: None (no memory_branch/: the loader builds a zero one),
        "zero" (saved at initialisation) or "random" (hint projections
        randomised, so the branch visibly acts). lora_rank: save a random LoRA.
    """
    from diffusers import AutoencoderKLWan, FlowMatchEulerDiscreteScheduler, UniPCMultistepScheduler, WanTransformer3DModel
    from safetensors.torch import save_file

    root = Path(path)
    root.mkdir(parents=True, exist_ok=True)
    g = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)

    mean = (0.2 * torch.randn(48, generator=g)).tolist()
    std = (0.5 + torch.rand(48, generator=g)).tolist()
    vae = AutoencoderKLWan(**TINY_VAE, latents_mean=mean, latents_std=std)
    vae.save_pretrained(root / "vae", safe_serialization=True)

    transformer = WanTransformer3DModel(**TINY_TRANSFORMER)
    transformer.save_pretrained(root / "transformer", safe_serialization=True)

    if scheduler == "unipc":
        UniPCMultistepScheduler(**UNIPC_FLOW).save_pretrained(root / "scheduler")
    elif scheduler == "euler":
        FlowMatchEulerDiscreteScheduler(shift=5.0).save_pretrained(root / "scheduler")
    else:
        raise ValueError(f"scheduler must be 'unipc' or 'euler', got {scheduler!r}")

    text_dim = TINY_TRANSFORMER["text_dim"]
    if prompt_embeds:
        embeds = torch.zeros(1, 16, text_dim)
        embeds[:, :5] = torch.randn(1, 5, text_dim, generator=g)  # a 5-token prompt, zero-padded as Wan pads
        save_file({"prompt_embeds": embeds}, str(root / "prompt_embeds.safetensors"))
    if text_encoder:
        _save_tiny_text_encoder(root, text_dim)
    if depth:
        _save_tiny_depth(root / "depth")
    if segmentation:
        _save_tiny_segmentation(root / "segmentation")
    if memory_branch is not None:
        from .memory_branch import WanMemoryBranch

        branch = WanMemoryBranch.from_transformer(transformer)
        if memory_branch == "random":
            for proj in branch.hint_proj:
                torch.nn.init.normal_(proj.weight, std=0.5, generator=g)
        elif memory_branch != "zero":
            raise ValueError(f"memory_branch must be None, 'zero' or 'random', got {memory_branch!r}")
        branch.save_pretrained(root / "memory_branch", safe_serialization=True)
    if lora_rank:
        from peft import LoraConfig

        from .loading import ADAPTER_NAME, save_lora

        transformer.add_adapter(LoraConfig(r=lora_rank, lora_alpha=lora_rank, target_modules=LORA_TARGETS), adapter_name=ADAPTER_NAME)
        for name, p in transformer.named_parameters():
            if "lora_B" in name:
                torch.nn.init.normal_(p, std=0.2, generator=g)
        save_lora(transformer, root / "lora")

    marker = {"kind": "wan2.2", "image_size": list(image_size), "num_inference_steps": num_inference_steps,
              "assumed_median_depth": 3.0, "note": "tiny random weights: for tests only"}
    (root / "world_model.json").write_text(json.dumps(marker, indent=2))
    return root


#: LoRA targets: attention q, k, v, o and the feed-forward (as the reference's r=32 LoRA).
LORA_TARGETS = ["to_q", "to_k", "to_v", "to_out.0", "ffn.net.0.proj", "ffn.net.2"]


def _save_tiny_text_encoder(root: Path, d_model: int) -> None:
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast, UMT5Config, UMT5EncoderModel

    vocab = {"<pad>": 0, "</s>": 1, "<unk>": 2}
    for word in TINY_VOCAB:
        vocab.setdefault(word, len(vocab))
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.post_processor = processors.TemplateProcessing(single="$A </s>", special_tokens=[("</s>", 1)])
    PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", eos_token="</s>", unk_token="<unk>").save_pretrained(root / "tokenizer")
    cfg = UMT5Config(vocab_size=len(vocab), d_model=d_model, d_kv=8, d_ff=32, num_layers=1, num_heads=2,
                     relative_attention_num_buckets=8)
    UMT5EncoderModel(cfg).save_pretrained(root / "text_encoder", safe_serialization=True)


def _save_tiny_depth(folder: Path) -> None:
    from transformers import DepthAnythingConfig, DepthAnythingForDepthEstimation, Dinov2Config

    backbone = Dinov2Config(hidden_size=16, num_hidden_layers=2, num_attention_heads=2, intermediate_size=32, patch_size=14,
                            image_size=28, out_indices=[1, 2], reshape_hidden_states=False)
    cfg = DepthAnythingConfig(backbone_config=backbone, reassemble_hidden_size=16, neck_hidden_sizes=[8, 16],
                              fusion_hidden_size=16, head_hidden_size=8, reassemble_factors=[2, 1], patch_size=14)
    model = DepthAnythingForDepthEstimation(cfg)
    with torch.no_grad():  # random heads end in ReLU ~ 0 everywhere; lift them to a positive disparity
        model.head.conv3.bias.fill_(1.0)
    model.save_pretrained(folder, safe_serialization=True)
    pre = {"image_mean": [0.485, 0.456, 0.406], "image_std": [0.229, 0.224, 0.225], "size": {"height": 28, "width": 28}}
    (folder / "preprocessor_config.json").write_text(json.dumps(pre))


def _save_tiny_segmentation(folder: Path) -> None:
    from transformers import SegformerConfig, SegformerForSemanticSegmentation

    cfg = SegformerConfig(num_encoder_blocks=2, depths=[1, 1], sr_ratios=[2, 1], hidden_sizes=[8, 16], patch_sizes=[7, 3],
                          strides=[4, 2], num_attention_heads=[1, 2], mlp_ratios=[2, 2], decoder_hidden_size=16,
                          num_labels=len(SEGMENTATION_LABELS), id2label=SEGMENTATION_LABELS,
                          label2id={v: k for k, v in SEGMENTATION_LABELS.items()})
    SegformerForSemanticSegmentation(cfg).save_pretrained(folder, safe_serialization=True)
    pre = {"image_mean": [0.485, 0.456, 0.406], "image_std": [0.229, 0.224, 0.225], "size": {"height": 32, "width": 32}}
    (folder / "preprocessor_config.json").write_text(json.dumps(pre))
