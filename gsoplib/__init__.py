"""gsoplib: global second-order pooling in convolutional networks (GSoP-Net, iSQRT-COV, GM-SOP).

Floors (each imports only from floors below it):
    1 ops, taps,       covariance, Newton-Schulz square root, triu vectorisation; tap modules;
      state_dict       a state dict without its training wrappers' names
    2 blocks, heads    GSoP / SE / CBAM blocks; GAP, iSQRT-COV and gated-mixture heads
    3 models, data, checkpoint
    4 train, probe, viz, attribution
    5 cli, explorer/, notebooks/
"""

__version__ = "0.3.0"
