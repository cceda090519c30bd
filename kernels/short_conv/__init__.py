"""The causal short convolution: the naive `Conv1d` specification and the shifted multiply-add form.

The public entry point is `kernels.causal_conv1d` in kernels.dispatch.
"""

from kernels.short_conv.naive import naive_causal_conv1d
from kernels.short_conv.shift import torch_causal_conv1d

__all__ = ["naive_causal_conv1d", "torch_causal_conv1d"]
