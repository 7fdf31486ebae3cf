"""Layer 0: row-sparse gradients (``IndexedSlices``) and row operations."""
