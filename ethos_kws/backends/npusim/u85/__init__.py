"""npu-sim's Ethos-U85 part: its own command decoding (``isa``, ``commands``), weight traversal
(``weights``), rounding (``rescale``), operations with the output stage, chaining and LUT RAM
(``ops``) and run loop (``executor``). Feature-map addressing, convolution arithmetic, the MLW
codec, the memories and the register file are shared with U55/U65; the README's "Ethos-U85"
section has the table of what differs and the operator coverage.
"""
