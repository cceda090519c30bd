"""Code shared by the ops: argument checks, the chunked form and its triangular inverse, the Triton
state passes and recurrence, and the inputs and comparisons used by the tests and the benchmark."""
