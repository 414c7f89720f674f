from inventory.stock import Product, needs_reorder


def test_a_product_running_low_is_reordered() -> None:
    low = Product("SKU-1", "Tea", on_hand=10, daily_sales=5, lead_time_days=2)
    assert needs_reorder(low)
