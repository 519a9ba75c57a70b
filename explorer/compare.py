"""Compare mode: two checkpoints on the same image and the same view, one above the other.

Each model's view gets the page's full width, so its charts keep the size they have on their
own; two half-width columns would push wide charts (covariances, attributions) under each
other."""

from __future__ import annotations

import streamlit as st
from gsoplib.explorer import views
from gsoplib.explorer.image_panel import ModelInput, for_spec
from gsoplib.explorer.model_panel import LoadedModel


def render(a: LoadedModel, b: LoadedModel, inputs: list[ModelInput], opts: views.Options
           ) -> None:
    """``opts.view`` of one image through ``a`` (above) and ``b`` (below); the image is
    converted for each model from the same upload with the same settings."""
    item = views.choose_image(inputs)
    with st.container(key=f"view-{opts.view.lower()}"):
        for loaded, prefix, place in ((a, "a_", "first"), (b, "b_", "second")):
            with st.container(border=True, key=f"{prefix}compared"):
                st.subheader(f"{place} model: {loaded.label}")
                batch = [x if loaded is a else for_spec(x, loaded.spec) for x in inputs]
                views.show(loaded, batch[inputs.index(item)], batch, opts, prefix)
