"""Process-group hygiene for DDP runs, whatever the backend.

Lightning destroys the default process group at exit only for NCCL. A gloo group (CPU runs,
``trainer=ddp_sim``) is then left to interpreter finalization, where the group's worker threads
can still hold finished work whose tensors are released after Python is gone, and the process
aborts with ``terminate called without an active exception`` (SIGABRT) although the run ended
well. :func:`destroy_process_group_at_exit` makes every worker destroy its group while the
interpreter is still alive; the setup hooks call it, since they run in each DDP process after the
group exists.
"""

from __future__ import annotations

import atexit

import torch.distributed as dist

_registered = False


def _initialized() -> bool:
    return dist.is_available() and dist.is_initialized()


def _destroy() -> None:
    if _initialized():
        dist.destroy_process_group()


def destroy_process_group_at_exit() -> bool:
    """Register the default group's destruction at exit (once per process); True if registered
    now. A no-op without an initialised process group."""
    global _registered
    if _registered or not _initialized():
        return False
    atexit.register(_destroy)
    _registered = True
    return True
