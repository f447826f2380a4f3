"""The offline pipeline: gull data, the classifier and (later) precomputed explanations. Uses torch."""
