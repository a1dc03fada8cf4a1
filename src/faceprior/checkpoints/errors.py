"""Exceptions raised by checkpoint loading, verification and download."""

from __future__ import annotations


class CheckpointError(RuntimeError):
    """A checkpoint file cannot be read, interpreted or used."""


class StateDictMismatchError(CheckpointError):
    """The keys or shapes of a state dict do not fit the target network.

    Attributes ``missing``, ``unexpected`` and ``mismatched`` hold the full lists; the message
    shows the first few of each with their counts.
    """

    def __init__(
        self,
        message: str,
        missing: list[str],
        unexpected: list[str],
        mismatched: list[tuple[str, tuple[int, ...], tuple[int, ...]]],
    ) -> None:
        super().__init__(message)
        self.missing = missing
        self.unexpected = unexpected
        self.mismatched = mismatched


class ChecksumError(CheckpointError):
    """A file's SHA-256 differs from the registered one."""


class UnknownCheckpointError(CheckpointError):
    """A name that is not in the checkpoint registry."""


class DownloadError(CheckpointError):
    """Downloading an official file failed (no network, no direct URL, HTTP error...)."""


class CheckpointFileError(CheckpointError):
    """A file given as a training checkpoint is not one, or not one this run can use.

    The message is one line naming the file and what it is; ``path`` and ``what`` hold the parts.
    """

    def __init__(self, path: object, what: str) -> None:
        super().__init__(f"'{path}' is {what}")
        self.path = str(path)
        self.what = what


class CheckpointNotFoundError(FileNotFoundError):
    """``ckpt_path`` names no file, or ``ckpt_path=latest`` found no usable checkpoint."""
