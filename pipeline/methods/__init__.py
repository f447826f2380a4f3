"""Explanation methods: pure functions of (model score, images, baselines) → saliency tensors."""
