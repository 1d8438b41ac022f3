"""The last transformer layer computed only where the classifier reads it.

A BERT-style classifier reads its last layer at the first token alone ([CLS], through BERT's pooler,
RoBERTa's or DistilBERT's head). That layer's keys and values need every token, but its query,
attention output, feed-forward block, layer norms and their dropouts are needed at that one
position: with h the layer's input (B, L, d) and c = h[:, :1] (DistilBERT: no dropout after W_o),

    a = LN(c + Dropout(W_o softmax(q(c) k(h)^T / sqrt(d_head) + mask[..., :1, :]) v(h)))
    y = LN(a + Dropout(FFN(a)))                                              y: (B, 1, d)

which is the full layer's output at position 0, so the logits and every gradient are unchanged
(tested with dropout off). The work saved is that layer's Q, O and FFN products at the other L - 1
positions, 5/36 of minilm-l6's linear work: with it, whole epochs on 2 CPU cores ran at 1.20x (RTE)
and 1.06x (CoLA) the fair Trainer's samples/s (reports/performance.md). Only the encoders whose
structure is known here take it; every other model is left as it is.
"""

from __future__ import annotations

import types
from collections.abc import Callable
from typing import Any

import torch

ATTENTION = ("eager", "sdpa")  # implementations whose mask is (B, 1, L or 1, L) or None


def at_first_token(model: torch.nn.Module) -> bool:
    """Makes ``model``'s last layer compute only position 0, in place (its weights and state_dict
    keys unchanged; a PEFT wrapper's base model is the one changed). True where it applied."""
    base: Any = model.get_base_model() if hasattr(model, "get_base_model") else model  # type: ignore[operator]
    known = READ_FIRST_TOKEN.get(type(base).__name__)
    config = base.config
    if (
        known is None
        or getattr(config, "is_decoder", False)
        or getattr(config, "add_cross_attention", False)
        or getattr(config, "chunk_size_feed_forward", 0)
        or config._attn_implementation not in ATTENTION
    ):
        return False
    layers, forward = known
    last = base.get_submodule(layers)[-1]
    last.forward = types.MethodType(forward, last)
    return True


def _attend(attn, query, key, value, first, hidden_states, attention_mask) -> torch.Tensor:
    """Multi-head attention of ``first`` (B, 1, d) over ``hidden_states`` (B, L, d) through the
    model's attention function: (B, 1, d), before the output projection."""
    from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS
    from transformers.models.bert.modeling_bert import eager_attention_forward

    batch = hidden_states.shape[0]

    def heads(x: torch.Tensor) -> torch.Tensor:
        return x.view(batch, x.shape[1], -1, attn.attention_head_size).transpose(1, 2)

    if attention_mask is not None and attention_mask.dim() == 4 and attention_mask.shape[-2] > 1:
        attention_mask = attention_mask[..., :1, :]
    attend = ALL_ATTENTION_FUNCTIONS.get_interface(attn.config._attn_implementation, eager_attention_forward)
    context, _ = attend(
        attn,
        heads(query(first)),
        heads(key(hidden_states)),
        heads(value(hidden_states)),
        attention_mask,
        dropout=attn.dropout.p if attn.training else 0.0,
        scaling=attn.scaling,
    )
    return context.reshape(batch, 1, -1)


def _bert_layer(layer, hidden_states, attention_mask=None, *args, **kwargs):
    """BertLayer.forward (transformers 5; RoBERTa's is the same) at position 0 only: (B, 1, d)."""
    attn, first = layer.attention.self, hidden_states[:, :1]
    context = _attend(attn, attn.query, attn.key, attn.value, first, hidden_states, attention_mask)
    attended = layer.attention.output(context, first)  # dense, dropout, LayerNorm(+ first)
    return layer.output(layer.intermediate(attended), attended)


def _distilbert_block(block, hidden_states, attention_mask=None, **kwargs):
    """DistilBERT's TransformerBlock.forward (transformers 5) at position 0 only: (B, 1, d)."""
    attn, first = block.attention, hidden_states[:, :1]
    context = _attend(attn, attn.q_lin, attn.k_lin, attn.v_lin, first, hidden_states, attention_mask)
    attended = block.sa_layer_norm(attn.out_lin(context) + first)
    return block.output_layer_norm(block.ffn(attended) + attended)


# classifier class -> (its layer list, the last layer's forward at position 0): heads that read position 0
READ_FIRST_TOKEN: dict[str, tuple[str, Callable[..., torch.Tensor]]] = {
    "BertForSequenceClassification": ("bert.encoder.layer", _bert_layer),
    "RobertaForSequenceClassification": ("roberta.encoder.layer", _bert_layer),
    "XLMRobertaForSequenceClassification": ("roberta.encoder.layer", _bert_layer),
    "DistilBertForSequenceClassification": ("distilbert.transformer.layer", _distilbert_block),
}
