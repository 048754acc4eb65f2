"""The exceptions the verification framework raises."""

from ..engine.errors import GPT2CoreError


class ReferencesError(GPT2CoreError, ValueError):
    """A reference set is missing, altered, malformed, or was made for other weights."""


class SubjectError(GPT2CoreError, ValueError):
    """A subject (the engine under verification) is malformed: a capability it declares but lacks, a
    checkpoint it returns under an unknown name, or a factory that cannot be imported."""


class DumpError(GPT2CoreError, ValueError):
    """A checkpoint dump an engine wrote is missing, unreadable, or of the wrong shape or dtype."""


class MemoryNeeded(GPT2CoreError, MemoryError):
    """A run would need more memory than the machine has available (said before anything is loaded)."""
