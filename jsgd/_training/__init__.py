"""Layer 3: training helpers generic over any optax transformation."""
