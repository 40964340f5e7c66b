"""The weights folder of the Wan2.2 backend: layout check and component loaders.

Layout (every weight file is safetensors; pickled files are refused)::

    <path>/
      world_model.json                 optional: {"kind": "wan2.2", defaults for WanWorldModel}
      vae/                             AutoencoderKLWan: config.json + diffusion_pytorch_model.safetensors
      transformer/                     WanTransformer3DModel: config.json + diffusion_pytorch_model.safetensors
                                       (or diffusion_pytorch_model.safetensors.index.json + its shards)
      scheduler/scheduler_config.json  UniPCMultistepScheduler (flow prediction) or FlowMatchEulerDiscreteScheduler
      memory_branch/                   optional WanMemoryBranch: config.json + diffusion_pytorch_model.safetensors
      lora/                            optional pytorch_lora_weights.safetensors (peft, via diffusers)
      prompt_embeds.safetensors        optional {"prompt_embeds": (1, L, text_dim)}
      text_encoder/ + tokenizer/       optional UMT5 encoder + tokenizer (used only when a prompt is given)
      depth/                           optional transformers depth model (AutoModelForDepthEstimation)
      segmentation/                    optional transformers semantic segmentation model (moving objects, sky)

The first four are what the public ``Wan-AI/Wan2.2-TI2V-5B-Diffusers``
folder already holds (plus text_encoder/ and tokenizer/), so a download of
that repository is a valid folder; the rest are ours.

Everything loads with ``local_files_only=True, use_safetensors=True``: no
hub access, no unpickling.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

import torch

logger = logging.getLogger(__name__)

PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl", ".pickle")
DIFFUSERS_WEIGHTS = "diffusion_pytorch_model.safetensors"
TRANSFORMERS_WEIGHTS = "model.safetensors"
LORA_WEIGHTS = "pytorch_lora_weights.safetensors"
PROMPT_EMBEDS = "prompt_embeds.safetensors"
MARKER = "world_model.json"
SCHEDULERS = ("UniPCMultistepScheduler", "FlowMatchEulerDiscreteScheduler")


class WeightsFolderError(FileNotFoundError):
    """The weights folder is missing, incomplete, or holds refused (pickled) files."""

    def __init__(self, path, problems: list[str]):
        self.path = Path(path)
        self.problems = list(problems)
        lines = "\n".join(f"  - {p}" for p in self.problems)
        super().__init__(
            f"Wan2.2 weights folder {self.path} is not usable:\n{lines}\n"
            "Expected layout: vae/, transformer/, scheduler/scheduler_config.json (required); memory_branch/, lora/, "
            "prompt_embeds.safetensors or text_encoder/ + tokenizer/, depth/ (optional). "
            "See docs/wan.md ('Running Mirage on Wan2.2 (GPU)')."
        )


@dataclass
class WanFolder:
    """What a checked weights folder holds (paths of present components)."""

    root: Path
    vae: Path
    transformer: Path
    scheduler: Path
    memory_branch: Path | None = None
    lora: Path | None = None
    prompt_embeds: Path | None = None
    text_encoder: Path | None = None
    tokenizer: Path | None = None
    depth: Path | None = None
    segmentation: Path | None = None
    defaults: dict = field(default_factory=dict)  # from world_model.json


# ----------------------------------------------------------------------------- checks


def _pickles(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.is_file() and p.suffix in PICKLE_SUFFIXES) if folder.is_dir() else []


def _check_weights(folder: Path, weights_name: str, what: str, needs_config: bool = True) -> list[str]:
    """Problems with one component folder (empty list: fine).

    Accepts a single ``weights_name`` file or a sharded checkpoint
    (``<weights_name>.index.json`` whose shards all exist)."""
    if not folder.is_dir():
        return [f"{folder.name}/ ({what}) is missing"]
    problems = []
    if needs_config and not (folder / "config.json").is_file():
        problems.append(f"{folder.name}/config.json ({what} config) is missing")
    index = folder / f"{weights_name}.index.json"
    if (folder / weights_name).is_file():
        pass
    elif index.is_file():
        try:
            shards = sorted(set(json.loads(index.read_text())["weight_map"].values()))
        except (ValueError, KeyError) as e:
            return problems + [f"{folder.name}/{index.name} is not a valid shard index ({e})"]
        missing = [s for s in shards if not (folder / s).is_file()]
        problems += [f"{folder.name}/{s} (shard listed in {index.name}) is missing" for s in missing]
    else:
        problems.append(f"{folder.name}/{weights_name} ({what} weights, safetensors) is missing")
    problems += [f"{folder.name}/{name} is a pickled file and is refused (mirage_gym never unpickles): "
                 "convert it to safetensors or remove it" for name in _pickles(folder)]
    return problems


def check_weights_folder(path) -> WanFolder:
    """Check the layout of ``path``; raise :class:`WeightsFolderError` listing
    everything missing, or return the :class:`WanFolder` found."""
    root = Path(path).expanduser()
    if not root.is_dir():
        raise WeightsFolderError(root, [f"the folder {root} does not exist"])
    problems: list[str] = []
    problems += _check_weights(root / "vae", DIFFUSERS_WEIGHTS, "AutoencoderKLWan")
    problems += _check_weights(root / "transformer", DIFFUSERS_WEIGHTS, "WanTransformer3DModel")
    sched = root / "scheduler" / "scheduler_config.json"
    if not sched.is_file():
        problems.append("scheduler/scheduler_config.json (flow scheduler config) is missing")
    else:
        name = json.loads(sched.read_text()).get("_class_name")
        if name not in SCHEDULERS:
            problems.append(f"scheduler/scheduler_config.json names {name!r}; supported: {', '.join(SCHEDULERS)}")

    def optional(name: str, weights: str, what: str, needs_config: bool = True) -> Path | None:
        folder = root / name
        if not folder.exists():
            return None
        found = _check_weights(folder, weights, what, needs_config)
        problems.extend(f"{p} (the optional {name}/ folder exists but is incomplete)" for p in found)
        return folder

    branch = optional("memory_branch", DIFFUSERS_WEIGHTS, "WanMemoryBranch")
    lora = optional("lora", LORA_WEIGHTS, "LoRA", needs_config=False)
    depth = optional("depth", TRANSFORMERS_WEIGHTS, "depth estimator")
    segmentation = optional("segmentation", TRANSFORMERS_WEIGHTS, "segmentation model")
    text_encoder = optional("text_encoder", TRANSFORMERS_WEIGHTS, "UMT5 text encoder")
    tokenizer = root / "tokenizer" if (root / "tokenizer").is_dir() else None
    if text_encoder is not None and tokenizer is None:
        problems.append("tokenizer/ is missing (text_encoder/ is present; both are needed to encode a prompt)")
    embeds = root / PROMPT_EMBEDS if (root / PROMPT_EMBEDS).is_file() else None

    defaults = {}
    if (root / MARKER).is_file():
        defaults = json.loads((root / MARKER).read_text())
        kind = defaults.pop("kind", "wan2.2")
        if kind != "wan2.2":
            problems.append(f"{MARKER} names kind {kind!r}, not 'wan2.2'")

    if problems:
        raise WeightsFolderError(root, problems)
    return WanFolder(
        root=root, vae=root / "vae", transformer=root / "transformer", scheduler=root / "scheduler",
        memory_branch=branch, lora=lora, prompt_embeds=embeds, text_encoder=text_encoder, tokenizer=tokenizer,
        depth=depth, segmentation=segmentation, defaults=defaults,
    )


# ---------------------------------------------------------------------------- loaders


def load_vae(folder: WanFolder, device="cpu", dtype=torch.float32):
    from diffusers import AutoencoderKLWan

    # The Wan VAE is run in float32 by the reference pipelines; bf16 costs colour accuracy.
    vae = AutoencoderKLWan.from_pretrained(folder.vae, local_files_only=True, use_safetensors=True, torch_dtype=dtype)
    return vae.to(device).eval().requires_grad_(False)


def load_transformer(folder: WanFolder, device="cpu", dtype=torch.float32):
    from diffusers import WanTransformer3DModel

    tr = WanTransformer3DModel.from_pretrained(folder.transformer, local_files_only=True, use_safetensors=True, torch_dtype=dtype)
    return tr.to(device).eval().requires_grad_(False)


def load_scheduler(folder: WanFolder):
    import diffusers

    config = json.loads((folder.scheduler / "scheduler_config.json").read_text())
    cls = getattr(diffusers, config["_class_name"])
    return cls.from_pretrained(folder.scheduler, local_files_only=True)


def load_memory_branch(folder: WanFolder, transformer, device="cpu", dtype=torch.float32, **branch_kw):
    """The trained branch if the folder has one, else a fresh zero-initialised
    branch shaped after ``transformer`` (the memory then has no effect until
    trained; a warning says so)."""
    from .memory_branch import WanMemoryBranch

    if folder.memory_branch is not None:
        branch = WanMemoryBranch.from_pretrained(folder.memory_branch, local_files_only=True, use_safetensors=True, torch_dtype=dtype)
    else:
        logger.warning("%s has no memory_branch/: using a zero-initialised branch, so the memory does not steer "
                       "generation until the branch is trained (mirage_gym.training.wan_train)", folder.root)
        branch = WanMemoryBranch.from_transformer(transformer, **branch_kw)
    return branch.to(device).eval().requires_grad_(False)


ADAPTER_NAME = "mirage"


def load_lora(transformer, lora_dir, adapter_name: str = ADAPTER_NAME, scale: float = 1.0):
    """Load a LoRA saved by ``save_lora_adapter`` into ``transformer`` (in place).

    ``use_safetensors=True``: without it diffusers looks for a pickled .bin.
    ``prefix=None``: our files store keys as the transformer names them."""
    transformer.load_lora_adapter(str(lora_dir), use_safetensors=True, adapter_name=adapter_name, prefix=None)
    if scale != 1.0:
        transformer.set_adapters([adapter_name], weights=[scale])
    return transformer


def save_lora(transformer, lora_dir, adapter_name: str = ADAPTER_NAME) -> None:
    """Save the adapter as ``lora_dir/pytorch_lora_weights.safetensors`` (peft
    config in its metadata, so rank and alpha come back on load)."""
    from diffusers.models import modeling_utils

    # save_lora_adapter calls transformer.to(dtype=None), which makes diffusers warn
    # about fp32 modules although nothing is cast; keep the log clean.
    level = modeling_utils.logger.level
    modeling_utils.logger.setLevel(logging.ERROR)
    try:
        transformer.save_lora_adapter(str(lora_dir), adapter_name=adapter_name, safe_serialization=True)
    finally:
        modeling_utils.logger.setLevel(level)


def load_prompt_embeds(folder: WanFolder, prompt: str | None, text_dim: int, device="cpu", dtype=torch.float32,
                       max_sequence_length: int = 512) -> torch.Tensor:
    """Prompt embeddings (1, L, text_dim), computed once.

    * ``prompt`` given: encode it with text_encoder/ + tokenizer/, then free
      the encoder (UMT5-XXL is ~11 GB; it is not needed after this).
    * else ``prompt_embeds.safetensors`` if present;
    * else zeros (1, 1, text_dim): Wan pads prompts with zero vectors, so this
      is "nothing said"; a warning says so.
    """
    if prompt is not None:
        if folder.text_encoder is None or folder.tokenizer is None:
            raise WeightsFolderError(folder.root, ["text_encoder/ and tokenizer/ are needed to encode prompt "
                                                   f"{prompt!r} (or precompute {PROMPT_EMBEDS})"])
        return encode_prompt(folder.text_encoder, folder.tokenizer, prompt, device, dtype, max_sequence_length)
    if folder.prompt_embeds is not None:
        from safetensors.torch import load_file

        tensors = load_file(str(folder.prompt_embeds))
        if "prompt_embeds" not in tensors:
            raise WeightsFolderError(folder.root, [f"{PROMPT_EMBEDS} has no 'prompt_embeds' tensor (keys: {sorted(tensors)})"])
        embeds = tensors["prompt_embeds"]
        if embeds.ndim == 2:
            embeds = embeds[None]
        if embeds.shape[-1] != text_dim:
            raise WeightsFolderError(folder.root, [f"{PROMPT_EMBEDS} has width {embeds.shape[-1]}, the transformer's text_dim is {text_dim}"])
        return embeds.to(device, dtype)
    logger.warning("%s has neither %s nor a prompt: generating with an empty (zero) prompt embedding", folder.root, PROMPT_EMBEDS)
    return torch.zeros(1, 1, text_dim, device=device, dtype=dtype)


@torch.no_grad()
def encode_prompt(text_encoder_dir, tokenizer_dir, prompt: str, device="cpu", dtype=torch.float32,
                  max_sequence_length: int = 512) -> torch.Tensor:
    """Encode one prompt the way diffusers' WanPipeline does (UMT5 last hidden
    state, cut at the prompt's length, zero-padded to ``max_sequence_length``),
    then release the encoder."""
    import gc

    from transformers import AutoTokenizer, UMT5EncoderModel

    tokenizer = AutoTokenizer.from_pretrained(str(tokenizer_dir), local_files_only=True)
    encoder = UMT5EncoderModel.from_pretrained(str(text_encoder_dir), local_files_only=True, use_safetensors=True)
    encoder = encoder.to(device).eval()
    tokens = tokenizer([prompt.strip()], padding="max_length", max_length=max_sequence_length, truncation=True,
                       add_special_tokens=True, return_attention_mask=True, return_tensors="pt")
    ids, mask = tokens.input_ids.to(device), tokens.attention_mask.to(device)
    hidden = encoder(ids, mask).last_hidden_state.to(dtype)  # (1, L, text_dim)
    length = int(mask.sum())
    embeds = torch.zeros_like(hidden)
    embeds[:, :length] = hidden[:, :length]
    del encoder
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    return embeds
