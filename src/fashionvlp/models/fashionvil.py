"""FashionViL (SPEC §3): single stream, one BERT as text encoder *and* fusion encoder.

Fusion input is ``[text tokens ; projected patch tokens]``, the latter with their own position and type
embeddings. The unimodal image path is the projected patch grid (no transformer on top).
"""

from __future__ import annotations

import copy

import torch
from torch import nn
from transformers import BertModel, PreTrainedTokenizerBase

from fashionvlp.config import ModelConfig
from fashionvlp.models.bert_blocks import embed_text, run_encoder
from fashionvlp.models.image_encoders import PatchEncoder
from fashionvlp.models.interface import FusedFeatures, ImageFeatures, TextFeatures, VisionLanguageModel, masked_mean
from fashionvlp.models.registry import register_architecture


@register_architecture("fashionvil")
class FashionViL(VisionLanguageModel):
    arch = "fashionvil"
    capabilities = frozenset({"fused_image_tokens"})

    def __init__(self, cfg: ModelConfig, image_encoder: PatchEncoder, bert: BertModel,
                 tokenizer: PreTrainedTokenizerBase):
        hidden = bert.config.hidden_size
        super().__init__(hidden, cfg.contrastive_scale_init)
        self.tokenizer = tokenizer
        self.image_encoder = image_encoder
        self.image_proj = nn.Linear(image_encoder.dim, hidden)
        self.text = bert
        # The ablation: a separate fusion encoder starts as a copy of the text encoder, then trains apart.
        self.fusion = bert if cfg.shared_fusion else copy.deepcopy(bert)
        self.shared_fusion = cfg.shared_fusion
        eps = bert.config.layer_norm_eps
        self.visual_position = nn.Embedding(image_encoder.num_patches, hidden)
        self.visual_type = nn.Parameter(torch.zeros(hidden))
        self.visual_norm = nn.LayerNorm(hidden, eps=eps)
        self.visual_dropout = nn.Dropout(bert.config.hidden_dropout_prob)
        self.pooler = nn.Sequential(nn.Linear(hidden, hidden), nn.Tanh())
        nn.init.normal_(self.visual_position.weight, std=0.02)
        nn.init.normal_(self.visual_type, std=0.02)

    @property
    def word_embeddings(self) -> nn.Embedding:
        return self.text.embeddings.word_embeddings

    def encode_image(self, pixels: torch.Tensor, image_keys: list[int] | None = None) -> ImageFeatures:
        patches = self.image_proj(self.image_encoder(pixels, image_keys))
        return ImageFeatures(global_=patches.mean(1), patches=patches)

    def encode_text(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> TextFeatures:
        tokens = run_encoder(self.text, embed_text(self.text, input_ids), attention_mask)
        return TextFeatures(global_=masked_mean(tokens, attention_mask), tokens=tokens)

    def fuse(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, image: ImageFeatures) -> FusedFeatures:
        text = embed_text(self.fusion, input_ids)
        positions = torch.arange(image.patches.shape[1], device=image.patches.device)
        visual = self.visual_dropout(self.visual_norm(image.patches + self.visual_position(positions) + self.visual_type))
        mask = torch.cat([attention_mask, attention_mask.new_ones(visual.shape[:2])], dim=1)
        hidden = run_encoder(self.fusion, torch.cat([text, visual], dim=1), mask)
        length = input_ids.shape[1]
        return FusedFeatures(pooled=self.pooler(hidden[:, 0]), embedding=hidden[:, length:].mean(1),
                             text_tokens=hidden[:, :length], image_tokens=hidden[:, length:])
