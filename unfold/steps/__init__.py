"""Descent steps generated from energies, as ``nn.Module``s, and the models built from them.

Steps: :class:`GradientStep`, :class:`ProximalGradientStep`, :class:`MMStep`, :class:`CCCPStep`,
:class:`Alternating`, :class:`InputAsData` (a step whose data is its input).  Step-size policies: :class:`FixedStep`, :class:`LearnableStep`,
:class:`CertifiedStep`, :class:`ArmijoStep`.  Models: :class:`Unrolled`, :class:`FixedPoint`.
Proximal maps: :class:`L1`, :class:`NonNegative`, :class:`NonNegL1`, :class:`Box`, :class:`Sphere`.
"""

from .base import EnergyStep
from .cccp import CCCPStep, SplittingCheck
from .mm import MajorizerCheck, MMStep
from .schedule import Alternating
from .fixed_point import FixedPoint, FixedPointInfo
from .gradient import GradientStep
from .input_data import InputAsData
from .policies import (
    ArmijoStep, CertifiedStep, FixedStep, LearnableStep, NormalizedGradient, StepPolicy, lipschitz_estimate,
)
from .prox import L1, Box, NonNegative, NonNegL1, Prox, Sphere
from .proximal import ProximalGradientStep
from .unrolled import Trajectory, Unrolled

__all__ = [
    "EnergyStep", "GradientStep", "ArmijoStep", "CertifiedStep", "FixedStep", "LearnableStep", "NormalizedGradient",
    "StepPolicy", "lipschitz_estimate", "Trajectory", "Unrolled", "L1", "Box", "NonNegative",
    "NonNegL1", "Prox", "Sphere", "ProximalGradientStep", "CCCPStep", "SplittingCheck", "MMStep",
    "MajorizerCheck", "Alternating", "FixedPoint", "FixedPointInfo", "InputAsData",
]
