"""The shipped YAML patches, installed with the package (``patches/*.yaml`` is package data).

``python run.py`` finds them here in the source tree, an installed ``folk-instrument`` in its
site-packages: nothing looks for them beside the source tree.
"""

from pathlib import Path

DIR = Path(__file__).resolve().parent
DEFAULT = DIR / "default.yaml"
ENSEMBLES = DIR / "ensembles"  # the shipped ensembles (``--ensemble solo|duo|trio|pipes``)


def shipped() -> list[Path]:
    """Every shipped patch, by name."""
    return sorted(DIR.glob("*.yaml"))
