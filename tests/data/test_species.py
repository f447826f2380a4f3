import pytest

from pipeline.data.species import SPECIES, resolve


@pytest.mark.parametrize(
    ("token", "cub_id"),
    [
        ("62", 62),
        ("062", 62),
        ("Herring", 62),
        ("herring_gull", 62),
        ("062.Herring_Gull", 62),
        ("Heermann's", 61),
        ("ring-billed", 64),
        ("Glaucous-winged Gull", 60),
        ("slaty backed", 65),
    ],
)
def test_resolve_accepts_ids_folders_and_common_names(token: str, cub_id: int) -> None:
    assert resolve(token).cub_id == cub_id


def test_resolve_names_the_accepted_spellings() -> None:
    with pytest.raises(ValueError, match="use a CUB id \\(59-66\\) or one of: California"):
        resolve("Kittiwake")


def test_the_eight_cub_gulls_in_id_order() -> None:
    assert [s.cub_id for s in SPECIES] == list(range(59, 67))
    assert SPECIES[0].folder == "059.California_Gull"


def test_look_alike_pairs_differ_in_the_marks_the_field_guides_name() -> None:
    by = {s.cub_id: s for s in SPECIES}
    herring, slaty, western, ring, calif, gw = by[62], by[65], by[66], by[64], by[59], by[60]
    # Herring / Slaty-backed / Western: mantle shade and eye.
    assert herring.mantle[0] > slaty.mantle[1] and herring.mantle[0] > western.mantle[1]
    assert herring.iris == slaty.iris != western.iris
    # Ring-billed / California: bill marks and legs.
    assert ring.bill_pattern == "black_ring" and calif.bill_pattern == "red_black_spots"
    assert ring.legs != calif.legs
    # Glaucous-winged / Herring: wingtips.
    assert gw.wingtip == "grey" and herring.wingtip == "black_mirrors"
