"""BERT layers run by our own forward, with the weights of a Hugging Face ``BertModel``.

Why not call ``BertLayer`` directly: in transformers 5.x a layer with cross-attention must be a decoder,
so its self-attention is causal. BLIP's image-grounded *encoder* needs bidirectional self-attention →
cross-attention → FFN, and its decoder needs causal self-attention with the same cross-attention and FFN.
So the HF modules hold (and load) the weights, and these functions decide the masks.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from transformers import BertModel


def key_mask(attention_mask: torch.Tensor) -> torch.Tensor:
    """[B, L] 1/0 → [B, 1, 1, L] bool (True = may attend), the shape SDPA broadcasts over heads and queries."""
    return attention_mask.bool()[:, None, None, :]


def causal_mask(attention_mask: torch.Tensor) -> torch.Tensor:
    """Key padding combined with a lower-triangular mask: [B, 1, L, L]."""
    length = attention_mask.shape[1]
    tril = torch.ones(length, length, dtype=torch.bool, device=attention_mask.device).tril()
    return key_mask(attention_mask) & tril[None, None]


def _heads(x: torch.Tensor, heads: int) -> torch.Tensor:
    b, n, d = x.shape
    return x.view(b, n, heads, d // heads).transpose(1, 2)


def _attend(query: nn.Linear, key: nn.Linear, value: nn.Linear, heads: int, x: torch.Tensor, context: torch.Tensor,
            mask: torch.Tensor | None, dropout: float) -> torch.Tensor:
    q, k, v = _heads(query(x), heads), _heads(key(context), heads), _heads(value(context), heads)
    out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=dropout)
    return out.transpose(1, 2).reshape(x.shape[0], x.shape[1], -1)


def self_attention(attention: nn.Module, heads: int, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Runs an HF ``BertAttention`` (self + output sub-layer) with an explicit mask."""
    sa, out = attention.self, attention.output
    ctx = _attend(sa.query, sa.key, sa.value, heads, x, x, mask, sa.dropout.p if attention.training else 0.0)
    return out.LayerNorm(out.dropout(out.dense(ctx)) + x)


def feed_forward(layer: nn.Module, x: torch.Tensor) -> torch.Tensor:
    return layer.output.LayerNorm(layer.output.dropout(layer.output.dense(layer.intermediate(x))) + x)


class CrossAttention(nn.Module):
    """Text queries attend to image tokens (keys/values may have another width, as in BLIP)."""

    def __init__(self, hidden: int, context_dim: int, heads: int, dropout: float = 0.1, eps: float = 1e-12):
        super().__init__()
        self.heads, self.dropout_p = heads, dropout
        self.query = nn.Linear(hidden, hidden)
        self.key = nn.Linear(context_dim, hidden)
        self.value = nn.Linear(context_dim, hidden)
        self.dense = nn.Linear(hidden, hidden)
        self.LayerNorm = nn.LayerNorm(hidden, eps=eps)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, context: torch.Tensor, context_mask: torch.Tensor | None) -> torch.Tensor:
        ctx = _attend(self.query, self.key, self.value, self.heads, x, context, context_mask,
                      self.dropout_p if self.training else 0.0)
        return self.LayerNorm(self.dropout(self.dense(ctx)) + x)


def embed_text(bert: BertModel, input_ids: torch.Tensor) -> torch.Tensor:
    """Word + position + type-0 embeddings, LayerNorm and dropout (BERT's embedding layer)."""
    return bert.embeddings(input_ids=input_ids, token_type_ids=torch.zeros_like(input_ids))


def run_encoder(bert: BertModel, hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """A plain bidirectional BERT stack over already-embedded tokens."""
    heads = bert.config.num_attention_heads
    mask = key_mask(attention_mask)
    for layer in bert.encoder.layer:
        hidden = feed_forward(layer, self_attention(layer.attention, heads, hidden, mask))
    return hidden
