"""FROQ (IJCB 2025) for any model: quality from the activation norms of a few intermediate
layers, chosen once per model on pseudo-labels (``calibrate``), one forward pass, no training."""
