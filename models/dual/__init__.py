"""Dual-encoder training: InfoNCE over member and post prompts, with easy and hard negatives."""
