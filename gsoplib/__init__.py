"""gsoplib: global second-order pooling in convolutional networks (GSoP-Net, iSQRT-COV, GM-SOP).

Floors: a module imports from its own floor or below, never from above, and no chain of imports
(function-level ones included) comes back to where it started; tests/test_floors.py reads this
list and checks both.

    1  ops, taps, state_dict, fileformat, registry, bundled, timing
    2  blocks, heads
    3  models, data, checkpoint, pretrained, convert, images
    4  train, probe, viz, attribution, ablation, class_usage, linear_probe, root_check, toy_mixture
    5  cli, explorer, notebooks

1: the math (covariance, Newton-Schulz, triu), tap modules, state dicts and the safetensors
header; 2: GSoP / SE / CBAM blocks, GAP, iSQRT-COV and gated-mixture heads; 3: networks, data,
checkpoints and untrusted inputs; 4: training and the analyses of trained networks; 5: the
command line, the app and the notebooks.
"""

__version__ = "0.3.0"
