"""Trainable networks whose layers are generated from energies by :mod:`unfold.steps`.

Plain ``nn.Module``s (``state_dict``, ``.to``, any optimiser): :class:`HopfieldClassifier` (a
deep-equilibrium classifier on a modern Hopfield energy), :class:`CRATE` (compression + ISTA steps
on sparse rate reduction), :class:`EnergyTransformer` (masked-token model on the ET energy),
:class:`LinearTransformer` and :class:`PreconditionedGD` (in-context regression),
:class:`HopfieldRecall` (associative recall with a generated Hopfield layer), and the drop-in
attention layers :class:`MultiheadAttention`, :class:`MSSA` and :class:`HopfieldHeads` (hflayers'
multi-head projected Hopfield layer).  Data:
:func:`digits` (scikit-learn's bundled 8×8 digits), :func:`patches`, :func:`icl_regression`,
:func:`associative_recall`.  Training: :func:`fit`.
"""

from .data import Digits, associative_recall, digits, icl_regression, patches, unpatch
from .train import TrainLog, accuracy, digit_batches, fit
from .hopfield import HopfieldClassifier
from .crate import CRATE
from .energy_transformer import EnergyTransformer
from .icl import LinearTransformer, PreconditionedGD
from .encoder import EncoderClassifier
from .yhw import YHWStack
from .attention import MSSA, MultiheadAttention
from .hopfield_heads import HopfieldHeads
from .recall import HopfieldRecall

__all__ = [
    "Digits", "associative_recall", "digits", "icl_regression", "patches", "unpatch",
    "TrainLog", "accuracy", "digit_batches", "fit",
    "HopfieldClassifier",
    "CRATE",
    "EnergyTransformer",
    "LinearTransformer", "PreconditionedGD",
    "EncoderClassifier",
    "YHWStack",
    "MultiheadAttention", "MSSA",
    "HopfieldHeads",
    "HopfieldRecall",
]
