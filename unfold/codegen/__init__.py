"""Batched PyTorch code generation from unfold expressions."""

from .compiled import CompiledEnergy
from .generate import GeneratedFunction, Output, compile_source, generate, generate_source
from .printer import TorchCodePrinter

__all__ = [
    "CompiledEnergy", "GeneratedFunction", "Output", "compile_source", "generate",
    "generate_source", "TorchCodePrinter",
]
