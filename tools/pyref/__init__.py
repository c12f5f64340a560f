"""PyTorch reference implementation of the ditd models (DiT, KL autoencoder, safetensors I/O)."""
