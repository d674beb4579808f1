"""The Modality Forcing DiT: config + size registry, embeddings, blocks, the model."""

from mf_core.model.config import MODEL_SIZES, ModelConfig, get_model_config
from mf_core.model.dit import ModalityForcingDiT, ModelOutput, build_model, count_parameters

__all__ = [
    "MODEL_SIZES",
    "ModalityForcingDiT",
    "ModelConfig",
    "ModelOutput",
    "build_model",
    "count_parameters",
    "get_model_config",
]
