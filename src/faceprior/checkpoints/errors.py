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
