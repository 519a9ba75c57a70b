"""gsoplib explorer: what each second-order part of a network did with an image.

    gsop explore                                    # or: make explore
    streamlit run explorer/app.py -- --checkpoint model.safetensors

Layout only; every panel is its own module and every number comes from gsoplib. The folder is
the package ``gsoplib.explorer`` once gsoplib is installed (``pip install -e ".[app]"`` in a
checkout), which is how this script, run by Streamlit from any folder, finds its panels.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import streamlit as st
import torch
from gsoplib.explorer import compare, image_panel, model_panel, views

from gsoplib.taps import part_paths


def _script_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="explorer/app.py", allow_abbrev=False)
    parser.add_argument("--checkpoint", help="a bundled checkpoint's name or a .safetensors path "
                        "to open first")
    return parser.parse_known_args(sys.argv[1:])[0]


# Sessions run in threads of one process and the models are small: one intra-op thread each is
# many times faster than two that spin against each other and against other processes.
torch.set_num_threads(1)
# The icon is a file beside this one: a named icon would be fetched from a font server.
st.set_page_config(page_title="gsoplib explorer",
                   page_icon=str(Path(__file__).with_name("icon.png")), layout="wide")
args = _script_args()

with st.sidebar:
    loaded = model_panel.choose("a_", "Model", default=args.checkpoint)
    if loaded is not None:
        model_panel.card(loaded, part_paths(loaded.checkpoint.model))
    comparing = st.toggle("Compare with a second checkpoint", key="compare")
    other = model_panel.choose("b_", "Second model") if comparing else None
    if other is not None:
        model_panel.card(other, part_paths(other.checkpoint.model))
    options = views.options()

st.title("Second-order pooling explorer")
if loaded is None:
    st.info("Choose a checkpoint in the sidebar.")
    st.stop()

inputs = image_panel.render(loaded.spec)
if not inputs:
    st.info("Pick a sample image or upload one.")
    st.stop()

if comparing and other is not None:
    compare.render(loaded, other, inputs, options)
elif comparing:
    st.info("Choose the second checkpoint in the sidebar to compare.")
else:
    views.render(loaded, inputs, options)
