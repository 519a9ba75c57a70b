"""Compare mode: two checkpoints side by side on the same image and the same view."""

from __future__ import annotations

import streamlit as st
from gsoplib.explorer import views
from gsoplib.explorer.image_panel import ModelInput, for_spec
from gsoplib.explorer.model_panel import LoadedModel


def render(a: LoadedModel, b: LoadedModel, inputs: list[ModelInput], opts: views.Options
           ) -> None:
    """``opts.view`` of one image through ``a`` (left) and ``b`` (right); the image is converted
    for each model from the same upload with the same settings."""
    item = views.choose_image(inputs)
    with st.container(key=f"view-{opts.view.lower()}"):
        for column, loaded, prefix in zip(st.columns(2), (a, b), ("a_", "b_")):
            with column:
                st.subheader(loaded.label)
                batch = [x if loaded is a else for_spec(x, loaded.spec) for x in inputs]
                views.show(loaded, batch[inputs.index(item)], batch, opts, prefix)
