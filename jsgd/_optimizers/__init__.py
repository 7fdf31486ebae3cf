"""Layer 4: optimizers defined once each, as factories and Keras-style classes."""
