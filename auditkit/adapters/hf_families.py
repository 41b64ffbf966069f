"""What differs between Hugging Face encoder families, in one table keyed by ``config.model_type``.

A DP run trains the top ``k`` layers and the classification head of a sequence classifier on
the frozen bottom's activations. Families differ in where the layers live (``encoder.layer`` or
``transformer.layer``), how a layer is called (the mask the model builds; DeBERTa-v2's relative
positions) and what the head computes from the last hidden states (BERT's pooler + classifier,
RoBERTa's and ELECTRA's own dense head on the first token, DeBERTa-v2's ``ContextPooler``,
DistilBERT's ``pre_classifier``). :func:`split` builds both halves from the model's own modules,
so that with the original weights ``top(bottom(x), mask) == model(x).logits``.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from auditkit.errors import AuditError


class FirstToken(nn.Module):
    """The first token's state, as heads that read [CLS] / <s> take it."""

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        return hidden[:, 0]


class MaskedStack(nn.Module):
    """Layers called ``layer(hidden, mask)`` with the attention mask the model itself builds."""

    def __init__(self, model: nn.Module, layers: list[nn.Module], first: int) -> None:
        super().__init__()
        self.layers = nn.ModuleList(layers)
        self.config = model.config

    def forward(self, hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        if not len(self.layers):
            return hidden
        attention = bidirectional_mask(self.config, hidden, mask)
        for layer in self.layers:
            out = layer(hidden, attention)
            hidden = out[0] if isinstance(out, tuple) else out
        return hidden


def bidirectional_mask(config: object, hidden: torch.Tensor, mask: torch.Tensor) -> object:
    """The mask an encoder hands its layers: transformers' own builder, else the additive extended mask."""
    try:
        from transformers.masking_utils import create_bidirectional_mask
    except ImportError:  # transformers < 4.56: layers take the additive (b, 1, 1, L) mask
        return (1.0 - mask[:, None, None, :].to(hidden.dtype)) * torch.finfo(hidden.dtype).min
    return create_bidirectional_mask(config=config, inputs_embeds=hidden, attention_mask=mask)


class DebertaStack(nn.Module):
    """DeBERTa-v2 layers with the encoder's 0/1 pair mask, relative positions and embeddings.

    The relative-position embeddings are encoder weights read by every layer as one unbatched
    tensor: they are kept frozen (a buffer), as are the projections that read them.
    """

    def __init__(self, model: nn.Module, layers: list[nn.Module], first: int) -> None:
        super().__init__()
        encoder = model.base_model.encoder
        self.layers = nn.ModuleList(layers)
        rel = encoder.get_rel_embedding()
        self.register_buffer("rel_embeddings", None if rel is None else rel.detach().clone())
        self.relative = bool(getattr(encoder, "relative_attention", False))
        self.buckets = int(getattr(encoder, "position_buckets", -1))
        self.max_relative = int(getattr(encoder, "max_relative_positions", -1))
        has_conv = first == 0 and layers and getattr(encoder, "conv", None) is not None
        self.conv = copy.deepcopy(encoder.conv) if has_conv else None  # runs after layer 0

    def forward(self, hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        if not len(self.layers):
            return hidden
        from transformers.models.deberta_v2.modeling_deberta_v2 import build_relative_position

        pair = mask[:, None, None, :] * mask[:, None, :, None]
        relative = (
            build_relative_position(hidden, hidden, bucket_size=self.buckets, max_position=self.max_relative)
            if self.relative
            else None
        )
        for i, layer in enumerate(self.layers):
            out = layer(hidden, pair, relative_pos=relative, rel_embeddings=self.rel_embeddings)[0]
            hidden = self.conv(hidden, out, mask) if i == 0 and self.conv is not None else out
        return hidden


def _deberta_frozen(layer: nn.Module) -> list[nn.Module]:
    """Projections that also read the unbatched relative embeddings: no per-sample gradient exists."""
    attention = layer.attention.self
    if not getattr(attention, "relative_attention", False) or not attention.pos_att_type:
        return []
    if attention.share_att_key:
        return [attention.query_proj, attention.key_proj]
    return [m for m in (getattr(attention, "pos_key_proj", None), getattr(attention, "pos_query_proj", None)) if m]


def _roberta_positions(model: nn.Module, mask: torch.Tensor) -> torch.Tensor:
    """RoBERTa counts positions from ``padding_idx + 1`` over real tokens: from the mask, never the ids,
    so that a baseline of pad tokens keeps the input's positions (IG completeness)."""
    padding = int(model.base_model.embeddings.padding_idx)
    return (torch.cumsum(mask, dim=1) * mask + padding).long()


@dataclass(frozen=True)
class Family:
    """Where a family keeps its layers, how they are called and what its head computes."""

    layers: Callable[[nn.Module], nn.ModuleList]
    head: Callable[[nn.Module], list[nn.Module]]  # applied in order to the last hidden states (b, L, h)
    output: Callable[[nn.Module], nn.Linear]  # the last linear layer (reused by mean pooling)
    stack: type[nn.Module] = MaskedStack
    frozen: Callable[[nn.Module], list[nn.Module]] = lambda layer: []
    positions: Callable[[nn.Module, torch.Tensor], torch.Tensor] | None = None
    attributed: Callable[[nn.Module], nn.Module] = lambda m: m.get_input_embeddings()  # the layer IG attributes
    position_offset: int = 0  # positions the family reserves before the first token


BERT = Family(
    layers=lambda m: m.base_model.encoder.layer,
    head=lambda m: [m.base_model.pooler, m.dropout, m.classifier],
    output=lambda m: m.classifier,
)
ROBERTA = Family(
    layers=lambda m: m.base_model.encoder.layer,
    head=lambda m: [m.classifier],  # dense + tanh + out_proj on <s>, inside the head
    output=lambda m: m.classifier.out_proj,
    positions=_roberta_positions,
    position_offset=2,
)
ELECTRA = Family(
    layers=lambda m: m.base_model.encoder.layer,
    head=lambda m: [m.classifier],  # dense + gelu + out_proj on the first token
    output=lambda m: m.classifier.out_proj,
)
DEBERTA_V2 = Family(
    layers=lambda m: m.base_model.encoder.layer,
    head=lambda m: [m.pooler, m.dropout, m.classifier],  # ContextPooler lives in the classifier
    output=lambda m: m.classifier,
    stack=DebertaStack,
    frozen=_deberta_frozen,
    # Without absolute positions (DeBERTa-v3) the word embeddings go straight into a LayerNorm, which is
    # scale-invariant: from a zero pad embedding the IG path is flat then jumps at 0. Attributing the
    # normalised embeddings keeps the path meaningful and completeness exact.
    attributed=lambda m: m.base_model.embeddings,
)
DISTILBERT = Family(
    layers=lambda m: m.base_model.transformer.layer,
    head=lambda m: [FirstToken(), m.pre_classifier, nn.ReLU(), m.dropout, m.classifier],
    output=lambda m: m.classifier,
)
FAMILIES: dict[str, Family] = {
    "bert": BERT,
    "roberta": ROBERTA,
    "xlm-roberta": ROBERTA,
    "camembert": ROBERTA,
    "electra": ELECTRA,
    "deberta-v2": DEBERTA_V2,
    "distilbert": DISTILBERT,
}


def family_of(config: object, key: str = "model") -> Family:
    """The family of a model config; one clear AuditError for a structure auditkit does not know."""
    model_type = getattr(config, "model_type", None)
    family = FAMILIES.get(str(model_type))
    if family is None:
        known = ", ".join(sorted(FAMILIES))
        raise AuditError(
            f"{key}: hf-text cannot split a '{model_type}' classifier into frozen and trainable layers "
            f"for DP runs (known families: {known})"
        )
    return family


def attributed_layer(model: nn.Module) -> nn.Module:
    """The per-token layer IG attributes: the input embeddings, or the family's own choice."""
    family = FAMILIES.get(str(getattr(model.config, "model_type", None)))
    return family.attributed(model) if family is not None else model.get_input_embeddings()


def model_inputs(model: nn.Module, ids: torch.Tensor, mask: torch.Tensor) -> dict[str, torch.Tensor]:
    """Keyword inputs for ``model``: ids, mask and, where the family derives them from ids, position ids."""
    inputs = {"input_ids": ids, "attention_mask": mask}
    family = FAMILIES.get(str(getattr(model.config, "model_type", None)))
    if family is not None and family.positions is not None:
        inputs["position_ids"] = family.positions(model, mask)
    return inputs


class _Stop(Exception):
    pass


class Bottom(nn.Module):
    """Embeddings and the first ``n - k`` layers: what layer ``n - k`` (or the head, for k=0) receives."""

    def __init__(self, model: nn.Module, k: int) -> None:
        super().__init__()
        self.model, self.k = model, k
        self.layers = family_of(model.config).layers(model)

    def forward(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        inputs = model_inputs(self.model, ids, mask)
        if self.k == 0:
            return self.model.base_model(**inputs)[0]
        captured: list[torch.Tensor] = []

        def grab(module: nn.Module, args: tuple, kwargs: dict) -> None:
            captured.append(args[0] if args else kwargs["hidden_states"])
            raise _Stop  # the layers above are the top's work

        handle = self.layers[len(self.layers) - self.k].register_forward_pre_hook(grab, with_kwargs=True)
        try:
            self.model.base_model(**inputs)
        except _Stop:
            pass
        finally:
            handle.remove()
        return captured[0]


class MeanPool(nn.Module):
    """Mean of the token states (sentence-embedding models are read this way)."""

    def forward(self, hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        weights = mask.to(hidden.dtype)[:, :, None]
        return (hidden * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1.0)


class Top(nn.Module):
    """The top ``k`` layers and the family's head, copied from the model: ``top(hidden, mask) -> logits``.

    ``pooling``: ``pooler`` (the head as the classifier has it), ``mean`` (mean of token states into its last
    linear layer) or ``tokens`` (a token classifier: per-position logits)."""

    def __init__(self, model: nn.Module, k: int, pooling: str = "pooler") -> None:
        super().__init__()
        family = family_of(model.config)
        layers = list(family.layers(model))
        first = len(layers) - k
        self.stack = family.stack(model, copy.deepcopy(layers[first:]), first)
        self.mean = MeanPool() if pooling == "mean" else None
        if pooling == "tokens":  # a token classifier's head reads every position: its dropout and classifier
            head = [model.dropout, model.classifier]
        elif self.mean is None:
            head = family.head(model)
        else:  # unused weights break Opacus: only the last linear layer is kept
            head = [nn.Dropout(getattr(model.config, "hidden_dropout_prob", 0.1)), family.output(model)]
        self.head = nn.Sequential(*copy.deepcopy(head))
        self.frozen = [m for layer in self.stack.layers for m in family.frozen(layer)]
        for module in self.frozen:
            module.requires_grad_(False)

    def forward(self, hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        hidden = self.stack(hidden, mask)
        return self.head(self.mean(hidden, mask) if self.mean is not None else hidden)


def split(model: nn.Module, k: int, pooling: str = "pooler") -> tuple[Bottom, Top]:
    """Frozen bottom (a view of ``model``) and a trainable copy of its top ``k`` layers and head."""
    n = len(family_of(model.config).layers(model))
    if not 0 <= k <= n:
        raise AuditError(f"auditors.privacy.train_top_layers: {k} asked, the model has {n} layers")
    return Bottom(model, k), Top(model, k, pooling)


class FullRecompute(nn.Module):
    """The whole model in every step with all but the top ``k`` layers frozen (no activation caching)."""

    def __init__(self, model: nn.Module, k: int, pooling: str = "pooler") -> None:
        super().__init__()
        self.model = copy.deepcopy(model).requires_grad_(False)
        family = family_of(model.config)
        layers = family.layers(self.model)
        for layer in list(layers)[len(layers) - k :]:
            layer.requires_grad_(True)
            for module in family.frozen(layer):
                module.requires_grad_(False)
        # The head on the last hidden states, trainable: it was copied frozen with the rest of the model.
        self.head = Top(self.model, 0, pooling).requires_grad_(True)

    def forward(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        hidden = self.model.base_model(**model_inputs(self.model, ids, mask))[0]
        return self.head(hidden, mask)
