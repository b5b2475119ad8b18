"""lepton.prune: magnitude pruning (unstructured) of Linear, Conv2d and recurrent (RNN/LSTM/GRU)
layers, channel pruning (structured) of Linear and Conv2d layers, and a fine-tuning helper that
keeps pruned weights at zero.

magnitude() zeroes the smallest weights and keeps a `weight_mask` buffer on each pruned layer
(`weight_ih_l0_mask` and so on for a recurrent layer's matrices; fine_tune and apply_masks
re-apply them; remove() drops them). channels() really shrinks layers:
it removes the output channels with the smallest L2 norm from a layer, and the matching inputs
of the next layer (through ReLU/GELU/Tanh/Sigmoid/Dropout/pooling, BatchNorm and Flatten).
"""

from lepton.prune.channels import channels
from lepton.prune.magnitude import apply_masks, fine_tune, magnitude, remove, sparsity

__all__ = ["magnitude", "channels", "fine_tune", "apply_masks", "remove", "sparsity"]
