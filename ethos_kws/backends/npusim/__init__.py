"""npu-sim: a bit-exact functional Ethos-U55/U65/U85 simulator in numpy.

One module per part of the hardware: ``container`` (the ``ethos-u`` op, regions, COP1 header),
``commands`` (command words, names/fields from Vela's ``ethos_u55_regs``), ``registers`` (sticky
register file), ``memory`` (bounds-checked regions and SHRAM), ``featuremap`` (NHWC/NHCWB16,
tiles, strides), ``weights`` (weight streams), ``scales`` (bias/scale streams), ``rescale``
(rounding modes), ``lut``, ``ops/`` (conv, pool, elementwise, dma), ``behaviours`` (inferred
behaviours behind switches), ``executor`` (run loop) and ``backend`` (the Backend protocol).
Ethos-U85 streams run on ``u85/`` (its own decoding, weight traversal, rounding, ops and run
loop on the shared feature maps, convolution arithmetic, codec and memories).
"""


def __getattr__(name: str):
    # ``make_backend`` is resolved lazily (importing the package must not load the simulator), and
    # is the real factory, so its declared keyword parameters are the backend's options
    if name == "make_backend":
        from .backend import make_backend

        return make_backend
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
