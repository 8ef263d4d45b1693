from __future__ import annotations

from torchbricks import bag_of_bricks


def test_every_name_in_all_is_importable_from_the_package() -> None:
    assert [name for name in bag_of_bricks.__all__ if not hasattr(bag_of_bricks, name)] == []
    assert bag_of_bricks.__all__ == sorted(bag_of_bricks.__all__)
