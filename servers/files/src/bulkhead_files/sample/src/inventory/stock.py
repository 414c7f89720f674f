"""Stock levels and the reorder rule."""

from dataclasses import dataclass

SAFETY_MARGIN_DAYS = 3


@dataclass(frozen=True)
class Product:
    sku: str
    name: str
    on_hand: int
    daily_sales: float
    lead_time_days: int

    def days_of_cover(self) -> float:
        """How many days the stock on hand lasts at the current sales rate."""
        if self.daily_sales <= 0:
            return float("inf")
        return self.on_hand / self.daily_sales


def needs_reorder(product: Product, margin: int = SAFETY_MARGIN_DAYS) -> bool:
    """Reorder when the stock covers fewer days than the lead time plus the margin."""
    return product.days_of_cover() < product.lead_time_days + margin
