"""Face decoders and the latent space transformer: from a recognition embedding back to a face."""
from explainer.generation.base import Decoder
from explainer.generation.transformer import EqualLinear, LatentTransformer, TransformerConfig

__all__ = ["Decoder", "EqualLinear", "LatentTransformer", "TransformerConfig"]
