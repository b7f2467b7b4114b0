"""Prompt-aware (vision-language) metrics: CLIPScore, PickScore, HPSv2, ImageReward, BLIPScore.

Each module registers one metric and imports torch, open_clip or transformers only when a metric
is created or scores, so importing them is cheap.
"""
