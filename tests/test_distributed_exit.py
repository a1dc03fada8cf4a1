"""DDP workers destroy their process group before interpreter shutdown, on gloo too."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

SCRIPT = textwrap.dedent(
    """
    import atexit
    import torch.distributed as dist
    from faceprior.utils.distributed import destroy_process_group_at_exit

    assert destroy_process_group_at_exit() is False  # no group yet: nothing to do
    # registered first, so it runs last (atexit is LIFO): reports what the helper left
    atexit.register(lambda: print("initialized at exit:", dist.is_initialized()))
    dist.init_process_group("gloo", init_method="file://{init}", rank=0, world_size=1)
    print("registered:", destroy_process_group_at_exit(), destroy_process_group_at_exit())
    """
)


def test_the_group_is_destroyed_at_exit_once(tmp_path: Path) -> None:
    code = SCRIPT.format(init=tmp_path / "init")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "registered: True False" in proc.stdout
    assert "initialized at exit: False" in proc.stdout
