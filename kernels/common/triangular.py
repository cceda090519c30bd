"""Inverse of a unit lower-triangular matrix in batched matmuls, without LAPACK.

MKL's batched triangular solve runs one threaded solve per matrix; on a busy two-core machine it
was seen to stall for half a second at a time, longer than the rest of the op. Batched matmuls do
not. Diagonal blocks of up to 16 rows are inverted by a Neumann product, then the block size doubles:

    (I + A)^-1 = (I - A)(I + A^2)(I + A^4)(I + A^8)        for A strictly lower, 16 x 16 (A^16 = 0)
    [[L11, 0], [L21, L22]]^-1 = [[L11^-1, 0], [-L22^-1 L21 L11^-1, L22^-1]]
"""

from __future__ import annotations

import torch

BASE_BLOCK = 16


def _diagonal_blocks(matrix: torch.Tensor, size: int) -> torch.Tensor:
    """The diagonal blocks of `size` rows of [..., C, C], as a view [..., C / size, size, size]."""
    C = matrix.shape[-1]
    count = C // size
    blocks = matrix.reshape(*matrix.shape[:-2], count, size, count, size).diagonal(dim1=-4, dim2=-2)
    return blocks.movedim(-1, -3)


def unit_lower_inverse(strictly_lower: torch.Tensor) -> torch.Tensor:
    """(I + A)^-1 for A = `strictly_lower`, [..., C, C] with C a power of two; only A's strictly lower
    triangle is read. Returns [..., C, C]."""
    C = strictly_lower.shape[-1]
    if C & (C - 1):
        raise ValueError(f"the blocked inverse needs a power-of-two size; got {C}")
    size = min(C, BASE_BLOCK)
    # Inverses of the diagonal blocks, [..., C / size, size, size], by the Neumann product.
    negated = -_diagonal_blocks(strictly_lower, size).tril(-1)
    blocks = negated + torch.eye(size, dtype=negated.dtype, device=negated.device)
    power = negated
    for _ in range(size.bit_length() - 2):  # factors for A^2 .. A^(size / 2)
        power = power @ power
        blocks = blocks + blocks @ power
    while size < C:
        lower_left = _diagonal_blocks(strictly_lower, 2 * size)[..., size:, :size]
        upper_inverse, lower_inverse = blocks[..., 0::2, :, :], blocks[..., 1::2, :, :]
        off_diagonal = -(lower_inverse @ lower_left @ upper_inverse)
        top = torch.cat([upper_inverse, torch.zeros_like(upper_inverse)], dim=-1)
        bottom = torch.cat([off_diagonal, lower_inverse], dim=-1)
        blocks = torch.cat([top, bottom], dim=-2)
        size *= 2
    return blocks.squeeze(-3)
