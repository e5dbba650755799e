"""npu-sim's Ethos-U85 part: its own command decoding (``isa``, ``commands``), weight traversal
(``weights``), rounding (``rescale``), operations (``ops``) and run loop (``executor``); feature-map
addressing, convolution arithmetic, the MLW codec, memories and the register file are shared with
U55/U65. See ``HARDWARE_DIFFERENCES`` in ``ops``'s docstring and the README's U85 section.
"""
