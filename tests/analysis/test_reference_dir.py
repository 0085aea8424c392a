"""Where the paper's reference data is looked for: the variable the README documents,
$XBARLAB_REFERENCE_DIR (the article folder or the folder holding it), and the older
$XBARLAB_REFERENCE."""

from __future__ import annotations

from pathlib import Path

import pytest

from xbarlab.analysis import derive_sherbrooke


@pytest.mark.parametrize("variable", ["XBARLAB_REFERENCE_DIR", "XBARLAB_REFERENCE"])
@pytest.mark.parametrize("point_at_article", [True, False])
def test_the_reference_folder_follows_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, variable: str, point_at_article: bool,
) -> None:
    article = tmp_path / derive_sherbrooke.ARTICLE
    article.mkdir()
    for name in ("XBARLAB_REFERENCE_DIR", "XBARLAB_REFERENCE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv(variable, str(article if point_at_article else tmp_path))
    assert derive_sherbrooke.article_dir() == article


def test_an_explicit_folder_without_the_data_means_absent(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("XBARLAB_REFERENCE_DIR", str(tmp_path))
    assert derive_sherbrooke.article_dir() is None
