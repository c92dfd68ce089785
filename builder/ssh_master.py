"""OpenSSH connection sharing: a master connection that later ssh runs reuse through its
socket (ControlMaster/ControlPath), asked to exit when its user is done."""

from __future__ import annotations

from pathlib import Path

from builder import proc

# How long a master outlives its last client (seconds): `builder ssh`'s, and `verify`'s
# outside a build
CONTROL_PERSIST = 60


def exit_master(control: Path, host: str = "node", ssh_config: Path | None = None) -> None:
    """Ask the SSH master listening on `control` to exit (nothing when there is none).
    ssh wants a host name even with `-S`: `host` (and `ssh_config`) only complete the
    command line, the socket alone says which master."""
    if not control.exists():
        return
    argv = ["ssh", "-S", str(control), "-O", "exit"]
    if ssh_config is not None:
        argv += ["-F", str(ssh_config)]
    proc.run([*argv, host], check=False, timeout=30)
