"""Rewrite the model zoo table between the zoo-table markers of Markdown files.

Usage: `PYTHONPATH=src python scripts/sync_zoo_table.py [FILE ...]` (default:
docs/weights.md, and README.md when it has the markers). The table comes from
`t2t_vit.render_zoo_table()`, i.e. from the weight registry in `src/t2t_vit/weights/registry.py`.
"""

from __future__ import annotations

import sys
from pathlib import Path

from t2t_vit import render_zoo_table

START, END = "<!-- zoo-table:start -->\n", "<!-- zoo-table:end -->"
ROOT = Path(__file__).resolve().parents[1]


def sync(path: Path) -> bool:
    """Replace the table in `path`; returns whether the file changed."""
    text = path.read_text()
    if START not in text or END not in text:
        raise SystemExit(f"{path}: no {START.strip()} ... {END} markers")
    head, rest = text.split(START, 1)
    _, tail = rest.split(END, 1)
    new = f"{head}{START}{render_zoo_table()}{END}{tail}"
    if new == text:
        return False
    path.write_text(new)
    return True


def main(argv: list[str]) -> int:
    paths = [Path(a) for a in argv]
    if not paths:
        paths = [ROOT / "docs" / "weights.md"]
        readme = ROOT / "README.md"
        if START in readme.read_text():
            paths.append(readme)
    for path in paths:
        print(f"updated {path}" if sync(path) else f"{path} is up to date")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
