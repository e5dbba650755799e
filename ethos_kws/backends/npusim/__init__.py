"""npu-sim: a bit-exact functional Ethos-U55/U65 simulator in numpy."""


def make_backend(model_path, **options):
    from .backend import make_backend as _make

    return _make(model_path, **options)
