"""Helpers shared by every op: argument checks, chunk padding, test inputs, the generic Triton recurrence."""
