"""The Model-SAT router network: capability encoder -> one-layer connector -> small instruction-tuned LLM (LoRA).

Layout of one scored sequence (LLaVA-style splicing of projected vectors into the LLM's input embeddings):

    [prompt head][instruction tokens][prompt tail]  | [cap_1 ... cap_C]["\\nAnswer:"]  | [cap_1 ... ]["\\nAnswer:"] | ...
    \\______________ shared prefix, read once ______/ \\___ candidate 1, perturbation 1 _/ \\__ candidate 2 ...

Each candidate segment attends to the shared prefix and to itself only (a block attention mask, with position ids
restarting after the prefix), so scoring N candidates costs one pass over the instruction plus N short segments, and
each segment's score equals what a separate full sequence would give. The score is the LLM's Yes-vs-No logit at the
last position of the segment: P("Yes") = sigmoid(score).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import torch
from torch import nn

from .config import LoraSettings, RouterModelConfig
from .encoders import CapabilityEncoder, build_encoder
from .weights import resolve_model_path

logger = logging.getLogger(__name__)

PROMPT_HEAD = "<|im_start|>user\nInstruction: "
PROMPT_TAIL = "\nCan the model below handle this instruction? Answer Yes or No.\nModel:"
ANSWER_CUE = "\nAnswer:"
SHAPE_BUCKET = 16


def _lora_config(settings: LoraSettings, task_type=None):
    from peft import LoraConfig

    return LoraConfig(r=settings.r, lora_alpha=settings.alpha, lora_dropout=settings.dropout,
                      target_modules=list(settings.target_modules) or None, task_type=task_type,
                      layers_to_transform=list(settings.layers) or None)


def truncate_layers(llm, keep: int) -> None:
    """Keep the first ``keep`` decoder layers (0 = all): the router reads a score off hidden states, and on a CPU
    the forward pass costs time in proportion to depth."""
    layers = llm.get_decoder().layers
    if keep <= 0 or keep >= len(layers):
        return
    llm.get_decoder().layers = layers[:keep]
    llm.config.num_hidden_layers = keep
    if getattr(llm.config, "layer_types", None):
        llm.config.layer_types = llm.config.layer_types[:keep]


def score_thresholds(scores: torch.Tensor, count: int) -> torch.Tensor:
    """Soft thresholds of scores in [0, 1]: feature k is sigmoid((score - t_k) / width) for ``count`` evenly spaced
    t_k, scaled to norm at most 1 (the size of a normalised line embedding). Monotone in the score, so "80%" reads as
    more than "60%" to a linear connector; the line's sentence embedding alone keeps the number's identity only."""
    centres = (torch.arange(count, dtype=torch.float32, device=scores.device) + 0.5) / count
    width = 0.5 / count
    return torch.sigmoid((scores.float()[:, None] - centres) / width) / count ** 0.5


class CapabilityConnector(nn.Linear):
    """The one-layer connector (a LLaVA-style projector): [line embedding ; score thresholds] -> LLM embedding."""

    def __init__(self, encoder_dim: int, llm_dim: int, score_features: int):
        super().__init__(encoder_dim + score_features, llm_dim)
        self.score_features = score_features

    def forward(self, line_embeddings: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        if self.score_features:
            features = score_thresholds(scores, self.score_features).to(line_embeddings.dtype)
            line_embeddings = torch.cat([line_embeddings, features], dim=-1)
        return super().forward(line_embeddings)


@dataclass
class PackedBatch:
    inputs_embeds: torch.Tensor  # [B, L, H]
    attention_mask: torch.Tensor  # [B, 1, L, L] additive
    position_ids: torch.Tensor  # [B, L]
    score_positions: torch.Tensor  # [B, K]


class RouterModel(nn.Module):
    """Holds the three parts and scores (instruction, capability-segment) pairs."""

    def __init__(self, config: RouterModelConfig, llm_adapter: str | None = None, encoder_adapter: str | None = None):
        super().__init__()
        from peft import PeftModel, get_peft_model
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.config = config
        encoder = build_encoder(config.encoder, path=config.encoder_path, max_tokens=config.encoder_max_tokens)
        # The encoder is tuned through LoRA so its base weights stay reachable (adapter disabled) for the
        # instruction embeddings that pick related tasks; those must not drift with training.
        if encoder_adapter:
            encoder.model = PeftModel.from_pretrained(encoder.model, encoder_adapter, is_trainable=True)
        else:
            encoder.model = get_peft_model(encoder.model, _lora_config(config.encoder_lora))
        self.encoder: CapabilityEncoder = encoder

        llm_folder = resolve_model_path(config.llm_path)
        self.tokenizer = AutoTokenizer.from_pretrained(llm_folder)
        base_llm = AutoModelForCausalLM.from_pretrained(llm_folder, dtype=torch.float32)
        truncate_layers(base_llm, config.llm_layers)
        if llm_adapter:
            self.llm = PeftModel.from_pretrained(base_llm, llm_adapter, is_trainable=True)
        else:
            self.llm = get_peft_model(base_llm, _lora_config(config.llm_lora, task_type="CAUSAL_LM"))
        hidden = base_llm.config.hidden_size
        self.connector = CapabilityConnector(encoder.dim, hidden, config.score_features)
        self._init_connector(base_llm)

        encode = lambda text: self.tokenizer(text, add_special_tokens=False).input_ids  # noqa: E731
        self.head_ids, self.tail_ids, self.cue_ids = encode(PROMPT_HEAD), encode(PROMPT_TAIL), encode(ANSWER_CUE)
        self.yes_id, self.no_id = encode(" Yes")[0], encode(" No")[0]

    def _init_connector(self, base_llm) -> None:
        # Start with outputs on the scale of real token embeddings so the frozen LLM sees familiar magnitudes.
        token_norm = base_llm.get_input_embeddings().weight.norm(dim=-1).mean().item()
        nn.init.normal_(self.connector.weight, std=token_norm / self.connector.in_features ** 0.5)
        nn.init.zeros_(self.connector.bias)

    # -- parts ---------------------------------------------------------------------------------------------------
    def set_trainable(self, stage: int) -> list[dict]:
        """Stage 1: connector only. Stage 2: everything that has adapters. Returns optimizer parameter groups."""
        for parameter in self.parameters():
            parameter.requires_grad = False
        groups = [{"name": "connector", "params": list(self.connector.parameters())}]
        if stage >= 2:
            groups.append({"name": "encoder", "params": [p for n, p in self.encoder.named_parameters() if "lora_" in n]})
            groups.append({"name": "llm", "params": [p for n, p in self.llm.named_parameters() if "lora_" in n]})
        for group in groups:
            for parameter in group["params"]:
                parameter.requires_grad = True
        return groups

    def capability_vectors(self, lines: list[str], scores: torch.Tensor) -> torch.Tensor:
        """Connector(encoder(line), line's score) for each capability line: the soft tokens a candidate contributes."""
        return self.connector(self.encoder.encode_text(lines), scores)

    @torch.no_grad()
    def base_text_embeddings(self, texts: list[str]) -> torch.Tensor:
        """Embeddings from the untuned encoder, used to match instructions to aptitude tasks."""
        with self.encoder.model.disable_adapter():
            return self.encoder.encode_text(texts)

    def instruction_ids(self, text: str) -> list[int]:
        ids = self.tokenizer(text, add_special_tokens=False, truncation=True,
                             max_length=self.config.max_instruction_tokens).input_ids
        return self.head_ids + ids + self.tail_ids

    # -- scoring -------------------------------------------------------------------------------------------------
    def pack(self, prefix_ids: list[list[int]], segments: torch.Tensor) -> PackedBatch:
        """Splice capability segments after each instruction prefix.

        ``segments`` is [B, K, C, H]: for each of B instructions, K segments of C capability vectors; the answer cue
        tokens are appended to every segment.
        """
        embed = self.llm.get_input_embeddings()
        batch, n_segments, n_caps, hidden = segments.shape
        device = segments.device
        cue = embed(torch.tensor(self.cue_ids, device=device))  # [Q, H]
        seg_len = n_caps + len(self.cue_ids)
        lengths = [len(ids) + n_segments * seg_len for ids in prefix_ids]
        # Round the length up: every new tensor shape costs a kernel set-up on CPU (oneDNN), so few shapes run faster.
        total = -(-max(lengths) // SHAPE_BUCKET) * SHAPE_BUCKET
        dtype = cue.dtype
        inputs = torch.zeros(batch, total, hidden, device=device, dtype=dtype)
        segment_id = torch.full((batch, total), -1, device=device, dtype=torch.long)
        positions = torch.zeros(batch, total, device=device, dtype=torch.long)
        score_positions = torch.zeros(batch, n_segments, device=device, dtype=torch.long)
        full_segments = torch.cat([segments.to(dtype), cue.expand(batch, n_segments, -1, -1)], dim=2)  # [B, K, S, H]
        for row, ids in enumerate(prefix_ids):
            p = len(ids)
            inputs[row, :p] = embed(torch.tensor(ids, device=device))
            inputs[row, p:p + n_segments * seg_len] = full_segments[row].reshape(n_segments * seg_len, hidden)
            segment_id[row, :p] = 0
            positions[row, :p] = torch.arange(p, device=device)
            offsets = torch.arange(seg_len, device=device)
            for k in range(n_segments):
                start = p + k * seg_len
                segment_id[row, start:start + seg_len] = k + 1
                positions[row, start:start + seg_len] = p + offsets
                score_positions[row, k] = start + seg_len - 1
        index = torch.arange(total, device=device)
        causal = index[None, :, None] >= index[None, None, :]
        same_segment = segment_id[:, :, None] == segment_id[:, None, :]
        key_in_prefix = (segment_id == 0)[:, None, :]
        allowed = causal & (key_in_prefix | same_segment)
        mask = torch.zeros(batch, 1, total, total, device=device, dtype=dtype)
        mask.masked_fill_(~allowed[:, None], torch.finfo(dtype).min)
        return PackedBatch(inputs, mask, positions, score_positions)

    def score_packed(self, packed: PackedBatch) -> torch.Tensor:
        """Yes-minus-No logit at each segment's last position: [B, K]."""
        backbone = self.llm.get_base_model().model  # LoRA layers live inside it; skipping lm_head saves a vocab-size matmul
        hidden = backbone(inputs_embeds=packed.inputs_embeds, attention_mask=packed.attention_mask,
                          position_ids=packed.position_ids, use_cache=False).last_hidden_state
        picked = torch.gather(hidden, 1, packed.score_positions[..., None].expand(-1, -1, hidden.shape[-1]))
        head = self.llm.get_output_embeddings().weight[[self.yes_id, self.no_id]]  # [2, H]
        logits = picked @ head.T
        return logits[..., 0] - logits[..., 1]

    def score(self, prefix_ids: list[list[int]], segments: torch.Tensor) -> torch.Tensor:
        return self.score_packed(self.pack(prefix_ids, segments))

    # -- persistence ---------------------------------------------------------------------------------------------
    def save_parts(self, folder) -> None:
        from safetensors.torch import save_file

        save_file({k: v.detach().cpu().contiguous() for k, v in self.connector.state_dict().items()},
                  str(folder / "connector.safetensors"))
        self.llm.save_pretrained(folder / "llm_adapter")
        self.encoder.model.save_pretrained(folder / "encoder_adapter")

    @classmethod
    def load_parts(cls, config: RouterModelConfig, folder) -> "RouterModel":
        from safetensors.torch import load_file

        model = cls(config, llm_adapter=str(folder / "llm_adapter"), encoder_adapter=str(folder / "encoder_adapter"))
        model.connector.load_state_dict(load_file(str(folder / "connector.safetensors")))
        return model.eval()
