"""The memory branch: a ControlNet/VACE-style side network that feeds the
warped memory into an unmodified diffusers ``WanTransformer3DModel``.

Why a side network: the base DiT was trained without memory, so the memory
must enter without disturbing what it already knows. As in ControlNet and
the Mirage reference (VACE-style blocks at every other layer), the branch
runs its own transformer blocks over [warped latent, coverage mask] tokens
and adds one "hint" per block to the DiT's hidden states after selected
layers, through *zero-initialised* output projections: at initialisation
every hint is exactly zero and the model is the base model, bit for bit.

Why hooks and not a fork: diffusers keeps evolving the Wan transformer; we
attach with PyTorch forward hooks on four stable submodules (``rope``,
``patch_embedding``, ``condition_embedder``, ``blocks[i]``) and never copy
its forward. The hints are computed in the hook on ``condition_embedder``
(after the patch embedding, before the block loop): computing them in a
pre-hook of ``blocks[0]`` would run inside the first gradient-checkpointed
block and break checkpointing.

Shapes: B batch, C latent channels, F latent frames, h x w latent grid,
N = F * (h / p_h) * (w / p_w) tokens, D = heads * head_dim.
"""

from __future__ import annotations

import contextlib
from typing import Sequence

import torch
import torch.nn as nn
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin
from diffusers.models.transformers.transformer_wan import WanTransformerBlock


class WanMemoryBranch(ModelMixin, ConfigMixin):
    r"""Memory branch for Wan2.x transformers.

    Args:
        latent_channels: C, channels of the (normalised) warped memory latent (48 for Wan2.2 TI2V).
        patch_size: the transformer's (t, h, w) patch size, so branch tokens align with DiT tokens.
        num_attention_heads, attention_head_dim, ffn_dim, cross_attn_norm, qk_norm, eps:
            the transformer's block hyper-parameters (D must equal the DiT's inner dim).
        inject_layers: indices of the DiT blocks after which hint j is added; one branch
            block per entry (the reference: 15 blocks at every other layer of 30).

    The condition is (B, C + 1, F, h, w): the warped latent (zeros where the
    memory is empty) and the coverage mask in [0, 1]; unlike the reference,
    the hole mask does reach the network.
    """

    _supports_gradient_checkpointing = True
    _no_split_modules = ["WanTransformerBlock"]
    _keep_in_fp32_modules = ["scale_shift_table", "norm1", "norm2", "norm3"]

    @register_to_config
    def __init__(
        self,
        latent_channels: int = 48,
        patch_size: Sequence[int] = (1, 2, 2),
        num_attention_heads: int = 24,
        attention_head_dim: int = 128,
        ffn_dim: int = 14336,
        inject_layers: Sequence[int] = tuple(range(0, 30, 2)),
        cross_attn_norm: bool = True,
        qk_norm: str | None = "rms_norm_across_heads",
        eps: float = 1e-6,
    ):
        super().__init__()
        inner_dim = num_attention_heads * attention_head_dim
        patch_size = tuple(patch_size)
        if len(set(inject_layers)) != len(inject_layers):
            raise ValueError(f"inject_layers must be distinct, got {list(inject_layers)}")
        # [warped latent, mask] -> one token per DiT token
        self.cond_embedding = nn.Conv3d(latent_channels + 1, inner_dim, kernel_size=patch_size, stride=patch_size)
        self.blocks = nn.ModuleList(
            [WanTransformerBlock(inner_dim, ffn_dim, num_attention_heads, qk_norm, cross_attn_norm, eps) for _ in inject_layers]
        )
        self.hint_proj = nn.ModuleList([nn.Linear(inner_dim, inner_dim) for _ in inject_layers])
        self.zero_hint_projections()
        self.gradient_checkpointing = False

    def zero_hint_projections(self) -> None:
        """Zero every output projection: the branch then adds exactly nothing."""
        for proj in self.hint_proj:
            nn.init.zeros_(proj.weight)
            nn.init.zeros_(proj.bias)

    @classmethod
    def from_transformer(cls, transformer, inject_layers: Sequence[int] | None = None, every: int = 2,
                         copy_weights: bool = True) -> "WanMemoryBranch":
        """A branch shaped after ``transformer`` (a ``WanTransformer3DModel``).

        ``inject_layers`` defaults to every ``every``-th layer. With
        ``copy_weights`` each branch block starts as a copy of the DiT block it
        feeds (the ControlNet recipe: the side path starts from features the
        base already understands); the hint projections are zero either way.
        """
        cfg = transformer.config
        if inject_layers is None:
            inject_layers = tuple(range(0, cfg.num_layers, every))
        inject_layers = tuple(int(i) for i in inject_layers)
        bad = [i for i in inject_layers if not 0 <= i < cfg.num_layers]
        if bad:
            raise ValueError(f"inject_layers {bad} are outside the transformer's {cfg.num_layers} layers")
        branch = cls(
            latent_channels=cfg.in_channels, patch_size=tuple(cfg.patch_size), num_attention_heads=cfg.num_attention_heads,
            attention_head_dim=cfg.attention_head_dim, ffn_dim=cfg.ffn_dim, inject_layers=inject_layers,
            cross_attn_norm=cfg.cross_attn_norm, qk_norm=cfg.qk_norm, eps=cfg.eps,
        )
        if copy_weights:
            for block, layer in zip(branch.blocks, inject_layers):
                block.load_state_dict(transformer.blocks[layer].state_dict())
        return cast_keeping_fp32(branch.to(transformer.device), transformer.dtype)

    def forward(self, hidden_states: torch.Tensor, condition: torch.Tensor, encoder_hidden_states: torch.Tensor,
                timestep_proj: torch.Tensor, rotary_emb) -> list[torch.Tensor]:
        """Hints, one (B, N, D) tensor per entry of ``inject_layers``.

        hidden_states: (B, N, D) the DiT's patch-embedded tokens; condition:
        (B, C + 1, F, h, w); the rest exactly as the DiT's blocks receive them.
        """
        c = self.cond_embedding(condition.to(self.cond_embedding.weight.dtype))  # (B, D, F, h/ph, w/pw)
        c = c.flatten(2).transpose(1, 2)  # (B, N, D)
        if c.shape != hidden_states.shape:
            raise ValueError(f"memory condition gives tokens {tuple(c.shape)} but the transformer has {tuple(hidden_states.shape)}: "
                             "condition must be (B, C + 1, F, h, w) with the transformer input's F, h, w")
        c = c + hidden_states
        hints = []
        for block, proj in zip(self.blocks, self.hint_proj):
            if torch.is_grad_enabled() and self.gradient_checkpointing:
                c = self._gradient_checkpointing_func(block, c, encoder_hidden_states, timestep_proj, rotary_emb)
            else:
                c = block(c, encoder_hidden_states, timestep_proj, rotary_emb)
            hints.append(proj(c))
        return hints


def cast_keeping_fp32(model, dtype: torch.dtype):
    """Cast ``model``'s parameters to ``dtype`` except those under its
    ``_keep_in_fp32_modules`` (norms, modulation tables), as diffusers'
    ``from_pretrained(torch_dtype=...)`` does; ``model.to(dtype)`` would cast all."""
    keep = set(getattr(model, "_keep_in_fp32_modules", None) or ())
    for name, p in model.named_parameters():
        target = torch.float32 if keep & set(name.split(".")) else dtype
        if p.dtype != target:
            p.data = p.data.to(target)
    return model


class MemoryBranchAttachment:
    """Forward hooks that run a :class:`WanMemoryBranch` inside a transformer's forward.

    Use::

        attachment = attach_memory_branch(transformer, branch)
        with attachment.condition(cond):          # cond (B, C + 1, F, h, w)
            out = transformer(x, t, prompt_embeds, return_dict=False)[0]
        attachment.remove()                        # the transformer is untouched again

    Outside ``condition(...)`` (or with ``cond=None``) the hooks pass
    everything through, so the same transformer also serves as the base model.
    """

    def __init__(self, transformer, branch: WanMemoryBranch):
        n = len(transformer.blocks)
        layers = list(branch.config.inject_layers)
        if any(not 0 <= i < n for i in layers):
            raise ValueError(f"branch inject_layers {layers} do not fit a transformer with {n} blocks")
        self.transformer, self.branch = transformer, branch
        self._cond: torch.Tensor | None = None
        self._rotary = None
        self._tokens = None
        self._hints: dict[int, torch.Tensor] = {}
        self._handles = [
            transformer.rope.register_forward_hook(self._on_rope),
            transformer.patch_embedding.register_forward_hook(self._on_patch_embedding),
            transformer.condition_embedder.register_forward_hook(self._on_condition_embedder),
        ]
        self._handles += [transformer.blocks[i].register_forward_hook(self._make_block_hook(i)) for i in layers]

    @contextlib.contextmanager
    def condition(self, cond: torch.Tensor | None):
        """Inject ``cond`` (B, C + 1, F, h, w) into every transformer call inside the block."""
        self._cond = cond
        try:
            yield self
        finally:
            self._cond, self._rotary, self._tokens, self._hints = None, None, None, {}

    def remove(self) -> None:
        for h in self._handles:
            h.remove()
        self._handles = []

    # hooks --------------------------------------------------------------------------

    def _on_rope(self, module, args, output):
        if self._cond is not None:
            self._rotary = output

    def _on_patch_embedding(self, module, args, output):
        if self._cond is not None:
            self._tokens = output.flatten(2).transpose(1, 2)  # (B, N, D), as the DiT flattens it

    def _on_condition_embedder(self, module, args, output):
        if self._cond is None:
            return
        temb, timestep_proj, encoder_hidden_states, encoder_hidden_states_image = output
        # The DiT reshapes timestep_proj after this module; do the same here.
        if timestep_proj.ndim == 3:  # per-token timesteps (Wan2.2 TI2V): (B, N, 6D)
            timestep_proj = timestep_proj.unflatten(2, (6, -1))
        else:  # (B, 6D)
            timestep_proj = timestep_proj.unflatten(1, (6, -1))
        if encoder_hidden_states_image is not None:
            encoder_hidden_states = torch.cat([encoder_hidden_states_image, encoder_hidden_states], dim=1)
        if self._cond.shape[0] != self._tokens.shape[0]:
            raise ValueError(f"memory condition has batch {self._cond.shape[0]}, the transformer input {self._tokens.shape[0]}")
        hints = self.branch(self._tokens, self._cond, encoder_hidden_states, timestep_proj, self._rotary)
        self._hints = dict(zip(self.branch.config.inject_layers, hints))

    def _make_block_hook(self, layer: int):
        def hook(module, args, output):
            hint = self._hints.get(layer) if self._cond is not None else None
            return output if hint is None else output + hint.to(output.dtype)

        return hook


def attach_memory_branch(transformer, branch: WanMemoryBranch) -> MemoryBranchAttachment:
    """Attach ``branch`` to ``transformer`` with forward hooks (see :class:`MemoryBranchAttachment`)."""
    return MemoryBranchAttachment(transformer, branch)
