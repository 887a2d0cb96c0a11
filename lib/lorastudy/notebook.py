"""What the notebooks share: load and check the parameters, show Markdown and charts."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .pipeline.checks import check_study
from .study.load import load_config
from .study.paths import StudyPaths
from .study.schema import StudyConfig


def setup(params_file: str, overrides: dict[str, Any], root: str) -> tuple[StudyConfig, StudyPaths]:
    """Validate the parameters (papermill injects them unchecked) and locate the study's files."""
    root_path = Path(root).resolve()
    cfg = load_config(params_file, overrides, root=root_path)
    check_study(cfg)
    return cfg, StudyPaths(root_path, cfg.study)


def show(markdown: str) -> None:
    from IPython.display import Markdown, display

    display(Markdown(markdown))


def show_figure(fig, caption: str) -> None:
    """A chart followed by its caption; a chart that does not apply shows the caption only.
    The caption is also the image's alternative text in both rendered reports."""
    import io

    import matplotlib.pyplot as plt
    from IPython.display import Image, display

    if fig is not None:
        png = io.BytesIO()
        fig.savefig(png, format="png", bbox_inches="tight")
        plt.close(fig)
        display(Image(data=png.getvalue(), format="png", metadata={"alt": caption or "chart"}))
    if caption:
        show(f"*{caption}*")
