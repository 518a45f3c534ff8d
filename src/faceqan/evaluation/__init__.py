"""Evaluation: pair protocols, verification accuracy, ERC / EDC."""
