from __future__ import annotations

from pathlib import Path

import pytest

from openglm.catalog import Catalog, CatalogError
from openglm.cli import main
from openglm.config import DEFAULT_CATALOG
from openglm.errors import ModelNotFoundError


def test_models_lists_the_catalog(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    assert "smollm2-135m-instruct (aliases: default)" in out
    assert "SmolLM2-135M-Instruct.Q4_1.gguf" in out


def test_default_catalog_resolves_aliases() -> None:
    catalog = Catalog.from_file(DEFAULT_CATALOG)
    assert catalog.lookup("default").id == "smollm2-135m-instruct"
    assert catalog.lookup("charglm-3").id == "smollm2-135m-instruct"  # a variant: served by the default model
    assert catalog.variants["charglm-3"].id == "charglm-3"  # billed under its own name and price
    with pytest.raises(ModelNotFoundError, match="available: charglm-3, default"):
        catalog.lookup("glm-5")


def test_duplicate_names_are_rejected(tmp_path: Path) -> None:
    path = tmp_path / "models.toml"
    path.write_text('[[models]]\nid = "a"\nsource = "x"\n[[models]]\nid = "b"\naliases = ["a"]\nsource = "y"\n')
    with pytest.raises(CatalogError, match="used twice"):
        Catalog.from_file(path)


def test_broken_catalog_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "models.toml"
    path.write_text("[[models]]\nid = 3\n")
    with pytest.raises(CatalogError, match="cannot read model catalog"):
        Catalog.from_file(path)
