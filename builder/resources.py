"""Where the templates and the embedded default config live.

In a checkout (and an editable install) they are the repository's top-level
`kickstart/`, `packer/` and `roles-config/`; a wheel carries the same trees
under `builder/_shipped/` (see pyproject.toml).
"""

from __future__ import annotations

from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent
_SHIPPED = {"kickstart": "kickstart", "packer": "packer", "roles-config": "roles_config"}


def resource_dir(name: str) -> Path:
    """The directory holding the named tree: kickstart, packer or roles-config."""
    shipped = _PACKAGE / "_shipped" / _SHIPPED[name]
    if shipped.is_dir():
        return shipped
    checkout = _PACKAGE.parent / name
    if checkout.is_dir():
        return checkout
    raise FileNotFoundError(f"builder is installed without its {name}/ directory")
