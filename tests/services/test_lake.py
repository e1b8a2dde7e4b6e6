from datetime import date
from pathlib import Path

from services.lake import Manifest, epoch_of, file_name, manifests, partition_dir, tmp_path


def test_names_sort_by_offset_and_temps_are_hidden(lake: Path) -> None:
    day_dir = partition_dir(lake, "donations", date(2026, 11, 28))
    final = day_dir / file_name("donations", "abcd1234", 2, 5, 99)
    assert final.name == "donations+eabcd1234+p2+000000000005-000000000099.parquet"
    assert tmp_path(final).name.startswith(".") and not tmp_path(final).name.endswith(".parquet")
    assert epoch_of("efir-x") == epoch_of("efir-x") != epoch_of("efir-y")


def test_manifest_written_atomically_and_listed_in_order(lake: Path) -> None:
    for first, last in [(100, 199), (0, 99)]:
        Manifest("donations", "e1", "cid", 0, first, last, last - first + 1, ["f"]).write_atomically(lake)
    found = manifests(lake, "donations")
    assert [(m.first_offset, m.last_offset) for m in found] == [(0, 99), (100, 199)]
    assert not list((lake / "_manifests").rglob("*.tmp"))
