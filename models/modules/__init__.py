"""Reusable blocks for every model family (audiocraft's `modules/`): import from here.

attention (MultiHeadAttention, causal_mask) · rope (RotaryEmbedding) · transformer (Block,
CrossBlock, Transformer, MLP, init_weights) · embeddings (CompoundEmbedding, CompoundHeads,
Embedding) ·
sampling (sample, filter_logits) · losses (compound_cross_entropy) · config (ModelConfig).
"""

from models.modules.attention import MultiHeadAttention, causal_mask
from models.modules.config import ModelConfig
from models.modules.embeddings import CompoundEmbedding, CompoundHeads, Embedding
from models.modules.losses import compound_cross_entropy
from models.modules.rope import RotaryEmbedding
from models.modules.sampling import filter_logits, sample
from models.modules.transformer import MLP, Block, CrossBlock, Transformer, init_weights

__all__ = [
    "MLP",
    "Block",
    "CompoundEmbedding",
    "CompoundHeads",
    "CrossBlock",
    "Embedding",
    "ModelConfig",
    "MultiHeadAttention",
    "RotaryEmbedding",
    "Transformer",
    "causal_mask",
    "compound_cross_entropy",
    "filter_logits",
    "init_weights",
    "sample",
]
