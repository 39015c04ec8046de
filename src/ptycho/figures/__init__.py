"""Figures written next to outputs. Uses matplotlib's object API (no pyplot global state)."""
