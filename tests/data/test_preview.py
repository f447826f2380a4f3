from pathlib import Path

from PIL import Image

from pipeline.data.cub import Dataset
from pipeline.data.preview import write_previews


def test_contact_sheet_has_a_row_per_species_and_guides_for_each(tmp_path: Path, tiny_gulls: Dataset) -> None:
    written = write_previews(tiny_gulls, tmp_path, per_row=3)
    names = sorted(p.name for p in written)
    assert names == [
        "contact_sheet.png",
        "guide_059_California_Gull.png",
        "guide_062_Herring_Gull.png",
        "guide_064_Ring_billed_Gull.png",
        "guide_066_Western_Gull.png",
    ]
    with Image.open(tmp_path / "contact_sheet.png") as sheet:
        assert sheet.size == (210 + 3 * 228, 4 * 228 + 4)  # label column + 3 tiles; 4 rows
    with Image.open(tmp_path / "guide_062_Herring_Gull.png") as guide:
        # portrait: the picture above its numbered marks, so a phone shows it near full width
        width, height = guide.size
        assert width == 520 and height > 520 + 5 * 28
