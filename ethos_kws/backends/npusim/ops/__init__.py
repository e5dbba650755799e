"""NPU operations: one module per hardware block function (conv, pool, elementwise, DMA)."""
