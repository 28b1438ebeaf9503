"""BASE: Bayesian meta architecture search (Shaw et al., NeurIPS 2019) on metanas supernets."""

from metanas.methods.base.checkpoint import CHECKPOINT_FORMAT, load_checkpoint, save_checkpoint
from metanas.methods.base.config import BASEConfig
from metanas.methods.base.derive import rank_darts, rank_nb201
from metanas.methods.base.inner import InnerConfig, TaskData, evaluate, run_inner_loop
from metanas.methods.base.meta import RunOptions, meta_train
from metanas.methods.base.method import Adaptation, BASEMethod, BASEPriorMethod

__all__ = ["CHECKPOINT_FORMAT", "Adaptation", "BASEConfig", "BASEMethod", "BASEPriorMethod", "InnerConfig",
           "RunOptions", "TaskData", "evaluate", "load_checkpoint", "meta_train", "rank_darts",
           "rank_nb201", "run_inner_loop", "save_checkpoint"]
