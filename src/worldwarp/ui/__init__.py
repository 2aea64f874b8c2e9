"""The web UI (``worldwarp ui``): a thin Gradio layer over the public API.

:mod:`worldwarp.ui.session` holds the per-user logic (testable without a browser); :mod:`worldwarp.ui.app`
builds the page. Gradio is imported only when the page is built.
"""

from __future__ import annotations

from worldwarp.ui.session import InputSpec, SessionView, UIConfig, UISession

__all__ = ["InputSpec", "SessionView", "UIConfig", "UISession", "build_app"]


def build_app(config: UIConfig | None = None):  # -> gradio.Blocks
    """The Gradio app (see :func:`worldwarp.ui.app.build_app`)."""
    from worldwarp.ui.app import build_app as _build

    return _build(config)
