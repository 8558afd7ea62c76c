"""The network: the front ends, the LSTMs over their frames, and training-time augmentation."""
