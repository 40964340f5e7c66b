"""Inference twins of the embedded model's three diffusers networks, so that
making and stepping the env needs no diffusers import.

Why: importing diffusers pulls in peft, transformers and torch._dynamo, 8-10 s
of the env's 11-15 s startup on a 2-core CPU, while the env only runs three
small networks forward. These modules have the same module tree and parameter
names as ``diffusers.AutoencoderTiny``, ``diffusers.UNet2DModel`` and
:class:`~.networks.GeometryHead` and the same ops in the same order, for the
configurations :func:`load_networks` accepts (tests/test_tiny_inference.py
checks bit-identical outputs against diffusers); any other configuration
loads through diffusers. Training and export keep the diffusers classes
(``networks.py``). The tensors read from a weights folder are kept once per
process (keyed by the files' sizes and times), so a second env, or each
sub-env of a SyncVectorEnv, does not read them again.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from types import SimpleNamespace

import torch
import torch.nn.functional as F
from torch import nn

WEIGHTS_FILE = "diffusion_pytorch_model.safetensors"
ACTIVATIONS = {"relu": nn.ReLU, "silu": nn.SiLU, "swish": nn.SiLU}


# ------------------------------------------------------------------ VAE (AutoencoderTiny)


class TinyBlock(nn.Module):
    """diffusers ``AutoencoderTinyBlock``."""

    def __init__(self, channels: int, act: str):
        super().__init__()
        self.conv = nn.Sequential(nn.Conv2d(channels, channels, 3, padding=1), ACTIVATIONS[act](),
                                  nn.Conv2d(channels, channels, 3, padding=1), ACTIVATIONS[act](),
                                  nn.Conv2d(channels, channels, 3, padding=1))
        self.skip = nn.Identity()
        self.fuse = nn.ReLU()

    def forward(self, x):
        return self.fuse(self.conv(x) + self.skip(x))


class TinyEncoder(nn.Module):
    def __init__(self, in_channels, out_channels, num_blocks, channels, act):
        super().__init__()
        layers = []
        for i, n in enumerate(num_blocks):
            c = channels[i]
            layers.append(nn.Conv2d(in_channels, c, 3, padding=1) if i == 0 else nn.Conv2d(c, c, 3, padding=1, stride=2, bias=False))
            layers += [TinyBlock(c, act) for _ in range(n)]
        layers.append(nn.Conv2d(channels[-1], out_channels, 3, padding=1))
        self.layers = nn.Sequential(*layers)

    def forward(self, x):
        return self.layers(x.add(1).div(2))


class TinyDecoder(nn.Module):
    def __init__(self, in_channels, out_channels, num_blocks, channels, scale, act, upsample):
        super().__init__()
        layers = [nn.Conv2d(in_channels, channels[0], 3, padding=1), ACTIVATIONS[act]()]
        for i, n in enumerate(num_blocks):
            last = i == len(num_blocks) - 1
            c = channels[i]
            layers += [TinyBlock(c, act) for _ in range(n)]
            if not last:
                layers.append(nn.Upsample(scale_factor=scale, mode=upsample))
            layers.append(nn.Conv2d(c, out_channels if last else c, 3, padding=1, bias=last))
        self.layers = nn.Sequential(*layers)

    def forward(self, x):
        return self.layers(torch.tanh(x / 3) * 3).mul(2).sub(1)


class AutoencoderTinyInference(nn.Module):
    """``encode(x).latents`` and ``decode(z).sample`` as diffusers' AutoencoderTiny (no tiling, no slicing)."""

    def __init__(self, cfg: dict):
        super().__init__()
        self.encoder = TinyEncoder(cfg["in_channels"], cfg["latent_channels"], cfg["num_encoder_blocks"],
                                   cfg["encoder_block_out_channels"], cfg["act_fn"])
        self.decoder = TinyDecoder(cfg["latent_channels"], cfg["out_channels"], cfg["num_decoder_blocks"],
                                   cfg["decoder_block_out_channels"], cfg["upsampling_scaling_factor"], cfg["act_fn"],
                                   cfg["upsample_fn"])

    def encode(self, x):
        return SimpleNamespace(latents=self.encoder(x))

    def decode(self, z):
        return SimpleNamespace(sample=self.decoder(z))

    @staticmethod
    def supports(cfg: dict) -> bool:
        widths = list(cfg.get("encoder_block_out_channels", [])) + list(cfg.get("decoder_block_out_channels", []))
        return (cfg.get("_class_name") == "AutoencoderTiny" and cfg.get("act_fn") in ACTIVATIONS and len(set(widths)) == 1
                and cfg.get("upsample_fn") == "nearest")


# ------------------------------------------------------------------ UNet2DModel and the geometry head


class ResnetBlock(nn.Module):
    """diffusers ``ResnetBlock2D`` with ``time_embedding_norm="default"``, no up/down sampling, eval mode."""

    def __init__(self, in_channels, out_channels, temb_channels, groups, eps, act="silu", output_scale_factor=1.0):
        super().__init__()
        self.norm1 = nn.GroupNorm(groups, in_channels, eps=eps, affine=True)
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, padding=1)
        self.time_emb_proj = nn.Linear(temb_channels, out_channels) if temb_channels is not None else None
        self.norm2 = nn.GroupNorm(groups, out_channels, eps=eps, affine=True)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1)
        self.nonlinearity = ACTIVATIONS[act]()
        self.conv_shortcut = nn.Conv2d(in_channels, out_channels, 1) if in_channels != out_channels else None
        self.output_scale_factor = output_scale_factor

    def forward(self, x, temb):
        h = self.conv1(self.nonlinearity(self.norm1(x)))
        if self.time_emb_proj is not None:
            temb = self.time_emb_proj(self.nonlinearity(temb))[:, :, None, None]
        if temb is not None:
            h = h + temb
        h = self.conv2(self.nonlinearity(self.norm2(h)))
        if self.conv_shortcut is not None:
            x = self.conv_shortcut(x)
        return (x + h) / self.output_scale_factor


class AttentionBlock(nn.Module):
    """diffusers ``Attention`` as the UNet's attention blocks build it, run as ``AttnProcessor2_0`` runs it."""

    def __init__(self, channels, head_dim, groups, eps, rescale=1.0):
        super().__init__()
        self.heads = channels // head_dim
        self.group_norm = nn.GroupNorm(groups, channels, eps=eps, affine=True)
        self.to_q, self.to_k, self.to_v = (nn.Linear(channels, self.heads * head_dim) for _ in range(3))
        self.to_out = nn.ModuleList([nn.Linear(self.heads * head_dim, channels), nn.Dropout(0.0)])
        self.rescale = rescale

    def forward(self, x):
        B, C, H, W = x.shape
        residual = x
        h = x.view(B, C, H * W).transpose(1, 2)
        h = self.group_norm(h.transpose(1, 2)).transpose(1, 2)
        q, k, v = self.to_q(h), self.to_k(h), self.to_v(h)
        d = k.shape[-1] // self.heads
        q, k, v = (t.view(B, -1, self.heads, d).transpose(1, 2) for t in (q, k, v))
        h = F.scaled_dot_product_attention(q, k, v, attn_mask=None, dropout_p=0.0, is_causal=False)
        h = h.transpose(1, 2).reshape(B, -1, self.heads * d).to(q.dtype)
        h = self.to_out[1](self.to_out[0](h))
        h = h.transpose(-1, -2).reshape(B, C, H, W)
        return (h + residual) / self.rescale


class Downsample(nn.Module):
    def __init__(self, channels, padding):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, stride=2, padding=padding)

    def forward(self, x):
        return self.conv(x)


class Upsample(nn.Module):
    def __init__(self, channels):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x):
        return self.conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))


class DownBlock(nn.Module):
    """``DownBlock2D`` (attention=False) or ``AttnDownBlock2D``."""

    def __init__(self, in_ch, out_ch, temb, layers, groups, eps, attention, head_dim, downsample, padding):
        super().__init__()
        self.resnets = nn.ModuleList([ResnetBlock(in_ch if i == 0 else out_ch, out_ch, temb, groups, eps) for i in range(layers)])
        self.attentions = nn.ModuleList([AttentionBlock(out_ch, head_dim, groups, eps) for _ in range(layers)]) if attention else None
        self.downsamplers = nn.ModuleList([Downsample(out_ch, padding)]) if downsample else None

    def forward(self, h, temb):
        states = ()
        for i, resnet in enumerate(self.resnets):
            h = resnet(h, temb)
            if self.attentions is not None:
                h = self.attentions[i](h)
            states += (h,)
        if self.downsamplers is not None:
            h = self.downsamplers[0](h)
            states += (h,)
        return h, states


class UpBlock(nn.Module):
    """``UpBlock2D`` (attention=False) or ``AttnUpBlock2D``."""

    def __init__(self, in_ch, prev_ch, out_ch, temb, layers, groups, eps, attention, head_dim, upsample):
        super().__init__()
        self.resnets = nn.ModuleList([
            ResnetBlock((prev_ch if i == 0 else out_ch) + (in_ch if i == layers - 1 else out_ch), out_ch, temb, groups, eps)
            for i in range(layers)])
        self.attentions = nn.ModuleList([AttentionBlock(out_ch, head_dim, groups, eps) for _ in range(layers)]) if attention else None
        self.upsamplers = nn.ModuleList([Upsample(out_ch)]) if upsample else None

    def forward(self, h, skips, temb):
        for i, resnet in enumerate(self.resnets):
            h = torch.cat([h, skips[-1]], dim=1)
            skips = skips[:-1]
            h = resnet(h, temb)
            if self.attentions is not None:
                h = self.attentions[i](h)
        if self.upsamplers is not None:
            h = self.upsamplers[0](h)
        return h


class MidBlock(nn.Module):
    def __init__(self, ch, temb, groups, eps, head_dim, scale):
        super().__init__()
        self.resnets = nn.ModuleList([ResnetBlock(ch, ch, temb, groups, eps, output_scale_factor=scale) for _ in range(2)])
        self.attentions = nn.ModuleList([AttentionBlock(ch, head_dim, groups, eps, rescale=scale)])

    def forward(self, h, temb):
        h = self.resnets[0](h, temb)
        return self.resnets[1](self.attentions[0](h), temb)


class TimestepEmbedding(nn.Module):
    def __init__(self, in_ch, out_ch):
        super().__init__()
        self.linear_1, self.act, self.linear_2 = nn.Linear(in_ch, out_ch), nn.SiLU(), nn.Linear(out_ch, out_ch)

    def forward(self, x):
        return self.linear_2(self.act(self.linear_1(x)))


def timestep_embedding(t: torch.Tensor, dim: int, flip_sin_to_cos: bool, shift: float, max_period: int = 10000) -> torch.Tensor:
    """diffusers ``get_timestep_embedding`` (scale 1)."""
    half = dim // 2
    exponent = -math.log(max_period) * torch.arange(0, half, dtype=torch.float32, device=t.device) / (half - shift)
    emb = t[:, None].float() * torch.exp(exponent)[None, :]
    emb = torch.cat([torch.sin(emb), torch.cos(emb)], dim=-1)
    if flip_sin_to_cos:
        emb = torch.cat([emb[:, half:], emb[:, :half]], dim=-1)
    if dim % 2 == 1:
        emb = F.pad(emb, (0, 1, 0, 0))
    return emb


class UNet2DInference(nn.Module):
    """``UNet2DModel(sample, timestep).sample`` for positional time embeddings, no class labels, conv resampling."""

    def __init__(self, cfg: dict):
        super().__init__()
        ch, g, eps, layers = list(cfg["block_out_channels"]), cfg["norm_num_groups"], cfg["norm_eps"], cfg["layers_per_block"]
        head = cfg["attention_head_dim"]
        temb = ch[0] * 4
        self.base_channels, self.flip, self.shift = ch[0], cfg["flip_sin_to_cos"], cfg["freq_shift"]
        self.conv_in = nn.Conv2d(cfg["in_channels"], ch[0], 3, padding=(1, 1))
        self.time_embedding = TimestepEmbedding(ch[0], temb)
        self.down_blocks = nn.ModuleList()
        out = ch[0]
        for i, kind in enumerate(cfg["down_block_types"]):
            inp, out = out, ch[i]
            self.down_blocks.append(DownBlock(inp, out, temb, layers, g, eps, kind == "AttnDownBlock2D", head or out,
                                              i < len(ch) - 1, cfg["downsample_padding"]))
        self.mid_block = MidBlock(ch[-1], temb, g, eps, head or ch[-1], cfg["mid_block_scale_factor"])
        rev = list(reversed(ch))
        out = rev[0]
        self.up_blocks = nn.ModuleList()
        for i, kind in enumerate(cfg["up_block_types"]):
            prev, out, inp = out, rev[i], rev[min(i + 1, len(ch) - 1)]
            self.up_blocks.append(UpBlock(inp, prev, out, temb, layers + 1, g, eps, kind == "AttnUpBlock2D", head or out,
                                          i < len(ch) - 1))
        self.conv_norm_out = nn.GroupNorm(g, ch[0], eps=eps)
        self.conv_act = nn.SiLU()
        self.conv_out = nn.Conv2d(ch[0], cfg["out_channels"], 3, padding=1)

    def forward(self, sample, timestep):
        t = timestep
        if not torch.is_tensor(t):
            t = torch.tensor([t], dtype=torch.long, device=sample.device)
        elif t.ndim == 0:
            t = t[None].to(sample.device)
        t = t * torch.ones(sample.shape[0], dtype=t.dtype, device=t.device)
        emb = self.time_embedding(timestep_embedding(t, self.base_channels, self.flip, self.shift).to(dtype=self.conv_in.weight.dtype))
        h = self.conv_in(sample)
        skips = (h,)
        for block in self.down_blocks:
            h, states = block(h, emb)
            skips += states
        h = self.mid_block(h, emb)
        for block in self.up_blocks:
            n = len(block.resnets)
            h, skips = block(h, skips[-n:], emb), skips[:-n]
        return SimpleNamespace(sample=self.conv_out(self.conv_act(self.conv_norm_out(h))))

    @staticmethod
    def supports(cfg: dict) -> bool:
        n = len(cfg.get("block_out_channels", []))
        return (cfg.get("_class_name") == "UNet2DModel" and n >= 1
                and all(cfg.get(k) == v for k, v in (
                    ("center_input_sample", False), ("time_embedding_type", "positional"), ("time_embedding_dim", None),
                    ("mid_block_type", "UNetMidBlock2D"), ("downsample_type", "conv"), ("upsample_type", "conv"),
                    ("act_fn", "silu"), ("attn_norm_num_groups", None), ("resnet_time_scale_shift", "default"),
                    ("add_attention", True), ("class_embed_type", None), ("num_class_embeds", None)))
                and len(cfg.get("down_block_types", [])) == n == len(cfg.get("up_block_types", []))
                and set(cfg["down_block_types"]) <= {"DownBlock2D", "AttnDownBlock2D"}
                and set(cfg["up_block_types"]) <= {"UpBlock2D", "AttnUpBlock2D"}
                and cfg.get("norm_num_groups") is not None and cfg.get("downsample_padding") == 1)


class GeometryHeadInference(nn.Module):
    """:class:`~.networks.GeometryHead` without its diffusers base classes."""

    def __init__(self, cfg: dict):
        super().__init__()
        c, w = cfg.get("latent_channels", 8), cfg.get("width", 64)
        self.conv_in = nn.Conv2d(c, w, 3, padding=1)
        self.blocks = nn.ModuleList([ResnetBlock(w, w, None, 8, 1e-6) for _ in range(cfg.get("num_blocks", 4))])
        self.norm_out = nn.GroupNorm(8, w)
        self.conv_out = nn.Conv2d(w, 2, 3, padding=1)

    def forward(self, latent):
        x = self.conv_in(latent)
        for block in self.blocks:
            x = block(x, None)
        out = self.conv_out(F.silu(self.norm_out(x)))
        return out[:, 0], out[:, 1]

    @staticmethod
    def supports(cfg: dict) -> bool:
        return cfg.get("_class_name") == "GeometryHead"


# ------------------------------------------------------------------ loading

NETWORKS = {"vae": AutoencoderTinyInference, "denoiser": UNet2DInference, "geometry": GeometryHeadInference}
_TENSORS: dict = {}  # (folder, file stats) -> {network: (config, float32 state dict)}: read once per process


def _read(folder: Path) -> dict:
    files = [folder / name / WEIGHTS_FILE for name in NETWORKS] + [folder / name / "config.json" for name in NETWORKS]
    key = (str(folder.resolve()), tuple((f.stat().st_size, f.stat().st_mtime_ns) for f in files))
    if key not in _TENSORS:
        from safetensors.torch import load_file

        _TENSORS.clear()  # keep the latest folder only: a training loop re-exporting must not grow memory
        _TENSORS[key] = {name: (json.loads((folder / name / "config.json").read_text()),
                                {k: v.float() for k, v in load_file(folder / name / WEIGHTS_FILE).items()})
                         for name in NETWORKS}
    return _TENSORS[key]


def load_networks(folder) -> dict | None:
    """The three networks of a checked weights folder as inference modules
    (float32, eval), or None when a configuration or a parameter is outside
    what these modules implement (the caller then loads through diffusers)."""
    folder = Path(folder)
    if not all((folder / name / WEIGHTS_FILE).is_file() for name in NETWORKS):
        return None
    tensors = _read(folder)
    nets = {}
    for name, cls in NETWORKS.items():
        cfg, state = tensors[name]
        if not cls.supports(cfg):
            return None
        net = cls(cfg)
        missing, unexpected = net.load_state_dict(state, strict=False)
        if missing or unexpected:
            return None
        nets[name] = net.eval()
    return nets
