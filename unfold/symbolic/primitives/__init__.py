"""One home per primitive: each module of this package defines one primitive (or one family) and
registers every rule about it with :mod:`unfold.symbolic.primitives.registry`."""

from .registry import Primitive, ScalarFunction, parser_names, primitive_of, primitives, scalar_function_of, scalar_functions

__all__ = ["Primitive", "ScalarFunction", "parser_names", "primitive_of", "primitives", "scalar_function_of",
           "scalar_functions"]
