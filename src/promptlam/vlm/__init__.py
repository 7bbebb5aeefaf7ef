"""Vision-language model representations: families, loading, pooling and encoding."""
