"""MetaD2A (Lee, Hyung, Hwang; ICLR 2021): rapid NAS by generating graphs from datasets.

A dataset is encoded from image features by a two-level Set Transformer (images -> class
prototypes -> dataset embedding); a set-to-graph VAE generates NB201 cells for that embedding
and a meta-performance predictor (its own dataset encoder + a D-VAE graph encoder) ranks them.
Both are meta-trained on a knowledge base; search trains nothing. See ``docs/metad2a.md``.

Modules: ``extractor`` (image features), ``set_encoder`` (Set Transformer blocks), ``graph``
(DAG decoder / encoder), ``models`` (generator, predictor), ``data`` (feature pools),
``training`` (meta-training), ``generation`` (drawing cells, generator metrics), ``validation``
(leave-tasks-out), ``method`` (the :class:`MetaD2AMethod` search method).
"""

from metanas.methods.metad2a.extractor import FeatureExtractor, SmallResNet, load_extractor
from metanas.methods.metad2a.method import CHECKPOINT_FORMAT, MetaD2AMethod
from metanas.methods.metad2a.training import MetaD2AConfig

__all__ = [
    "CHECKPOINT_FORMAT", "FeatureExtractor", "MetaD2AConfig", "MetaD2AMethod", "SmallResNet",
    "load_extractor",
]
