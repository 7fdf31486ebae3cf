"""Layer 0: native kernels, optional (built at install when a C++ compiler is there)."""
