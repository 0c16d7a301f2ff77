"""What the bias probes share: their categories, the shipped data files, and reading them."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from pydantic import ValidationError

from langdeploy.evaluate.dataset import DatasetError

CATEGORIES = ("gender", "ethnicity", "religion", "age", "nationality", "disability")
# BBQ's own category names, so its published files load as they are.
BBQ_CATEGORY_NAMES = {
    "gender_identity": "gender",
    "race_ethnicity": "ethnicity",
    "religion": "religion",
    "age": "age",
    "nationality": "nationality",
    "disability_status": "disability",
}


def data_path(name: str) -> Path:
    return Path(str(resources.files("langdeploy.evaluate") / "data" / name))


def shipped_probes_path() -> Path:
    return data_path("bbq_probes.jsonl")


def shipped_templates_path() -> Path:
    return data_path("counterfactual_templates.jsonl")


def read_lines(path: Path) -> list[tuple[int, str]]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise DatasetError(f"Could not read {path}: {exc}.", fix="Pass an existing file.") from None
    return [(n, ln) for n, ln in enumerate(text.splitlines(), start=1) if ln.strip()]


def first_error(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        err = exc.errors()[0]
        loc = ".".join(str(p) for p in err["loc"])
        return f"{loc}: {err['msg']}" if loc else err["msg"]
    return str(exc)


def category_order(cat: str) -> tuple[int, str]:
    return (CATEGORIES.index(cat) if cat in CATEGORIES else len(CATEGORIES), cat)
