"""Inventory: stock levels and reorder rules for a small shop."""

from inventory.stock import Product, needs_reorder

__all__ = ["Product", "needs_reorder"]
