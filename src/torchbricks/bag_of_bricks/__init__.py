"""Reusable modules and bricks: preprocessors, backbones, heads and visualizations."""
