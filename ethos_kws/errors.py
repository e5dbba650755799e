"""Exceptions with messages a user can act on.

Library code raises these; only the CLI turns them into exit codes (see ``cli``):
``UserError`` and its subclasses (bad input: files, flags, streams) become a one-line message and
exit code 2; any other ``EthosKwsError`` (a tool or runtime failing on good input) exit code 1.
"""


class EthosKwsError(Exception):
    """Base class for every error ethos-kws raises on purpose."""


class UserError(EthosKwsError):
    """Bad input from the user: a file, a flag, an environment variable. Exit code 2."""


class ModelError(UserError):
    """The model file is missing, unreadable or not a usable TFLite flatbuffer."""


class AcceleratorError(UserError):
    """Unknown accelerator, system config or memory mode."""


class InputDataError(UserError):
    """An input tensor, .npy or WAV file that does not fit the model."""


class FetchError(UserError):
    """Downloading the ML-zoo model failed; nothing was cached."""


class CompileError(EthosKwsError):
    """Vela refused or failed to compile the model."""


class BackendError(EthosKwsError):
    """A backend (CPU runtime, NPU simulator, FVP) failed to run the model."""


class BackendUnavailable(UserError):
    """A backend cannot run on this machine (e.g. no FVP installed)."""


class CommandStreamError(UserError):
    """The NPU command stream is malformed: undefined opcodes or register values, accesses outside
    a region, a truncated or inconsistent container. Exit code 2."""


class NotModelledError(EthosKwsError):
    """A valid model or command stream uses something the simulator does not model (a hardware
    feature, an operator). Ours to fix, not the user's: exit code 1; parity records it as
    ``unsupported: <what>``."""


class InputNotModelledError(NotModelledError):
    """Not modelled for these input values only (an int32 DIV by zero): the stream itself runs,
    so loading a model (its warm-up on zeros) does not stop on it; a run on such values does."""


class OutputPathError(UserError):
    """An output path (--out, the cache folder) that cannot be written or must not be replaced."""


class StorageFullError(EthosKwsError):
    """The disk filled up while writing; nothing half-written was kept. Exit code 1."""
