"""Manifest mistakes pandas would hide: repeated columns, one scan under two ids or patients."""

from __future__ import annotations

import pandas as pd
import pytest

from auditkit.data.manifest import read_manifest
from auditkit.errors import ManifestError


@pytest.mark.parametrize("header", ["image,label,label", "image,label, label ", "image, image ,label"])
def test_a_repeated_column_is_refused_not_renamed(tmp_path, tiny_data, header):
    rows = pd.read_csv(tiny_data)
    path = tiny_data.parent / "dup.csv"
    names = [h for h in header.split(",")]
    body = "\n".join(",".join([r.image, str(r.label), str(r.label)][: len(names)]) for r in rows.itertuples())
    path.write_text(",".join(names) + "\n" + body + "\n")
    with pytest.raises(ManifestError, match="appears more than once in the header"):
        read_manifest(path)


def test_one_scan_under_two_ids_and_two_patients_is_warned(tiny_data, capsys):
    table = pd.read_csv(tiny_data)
    table.insert(0, "id", [f"c{i}" for i in range(len(table))])
    table.loc[1, "image"] = "./" + table.loc[0, "image"]  # the same file, spelled differently
    table.to_csv(tiny_data, index=False)
    manifest = read_manifest(tiny_data)
    assert len(manifest.warnings) == 2
    assert "rows [1, 2]" in manifest.warnings[0] and "leakage" in manifest.warnings[1]
    assert "warning:" in capsys.readouterr().err
    table.loc[1, "patient_id"] = table.loc[0, "patient_id"]
    table.to_csv(tiny_data, index=False)
    assert len(read_manifest(tiny_data).warnings) == 1  # same patient: counted twice, no leakage
