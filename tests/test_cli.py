"""The CLI contract maintainers and scripts rely on (issue #2, section 4)."""

import json
import subprocess
import sys

import numpy as np
import pytest

from .conftest import ROOT, jpeg_bytes, needs_shared, real_images, skin_with_spot

FIELDS = {"path", "accepted", "reasons", "risk", "malignancy", "probabilities", "model", "ms"}


def run_cli(*args, check=True):
    proc = subprocess.run([sys.executable, "-m", "inference", *map(str, args)], capture_output=True, text=True, cwd=ROOT, timeout=120, check=False)
    if check:
        assert proc.returncode == 0, proc.stderr
    return proc


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    d = tmp_path_factory.mktemp("cli")
    files = {
        "dark": d / "dark.jpg",
        "junk": d / "junk.jpg",
        "missing": d / "missing.jpg",
    }
    files["dark"].write_bytes(jpeg_bytes((skin_with_spot() * 0.1).astype(np.uint8)))
    files["junk"].write_bytes(b"not an image at all" * 100)
    return files


@needs_shared
def test_json_one_record_per_input_in_order(inputs):
    lesion = real_images("pad_ufes20", 1)[0]
    paths = [lesion, inputs["dark"], inputs["junk"], inputs["missing"]]
    out = run_cli("--json", *paths).stdout.strip().splitlines()
    recs = [json.loads(line) for line in out]
    assert [r["path"] for r in recs] == [str(p) for p in paths]
    for r in recs:
        assert FIELDS <= set(r), set(r)
        assert r["model"]
    good, dark, junk, missing = recs
    if good["accepted"]:
        assert good["reasons"] == [] and good["risk"] in ("low", "moderate", "high")
        assert 0.0 <= good["malignancy"] <= 1.0
        assert abs(sum(good["probabilities"].values()) - 1) < 1e-3
    assert dark == {**dark, "accepted": False, "risk": None, "malignancy": None}
    assert "too_dark" in dark["reasons"]
    assert junk["reasons"] == ["unsupported_format"] and junk["risk"] is None
    assert missing["reasons"] == ["unreadable_file"]


def test_force_classifies_rejected_photos_but_keeps_reasons(inputs):
    proc = run_cli("--json", "--force", inputs["dark"])
    rec = json.loads(proc.stdout)
    assert proc.stderr.strip() == "", "the model loads silently (no XNNPACK INFO line from LiteRT's native code)"
    assert rec["accepted"] is False and "too_dark" in rec["reasons"]
    assert rec["risk"] in ("low", "moderate", "high")
    assert 0.0 <= rec["malignancy"] <= 1.0 and len(rec["probabilities"]) == 7
    plain = json.loads(run_cli("--json", inputs["dark"]).stdout)
    assert rec["reasons"] == plain["reasons"], "--force adds numbers, never other reasons"


def test_text_output_explains_the_score_and_the_class_code(inputs):
    """A melanoma used to read "risk HIGH … top nv": the risk follows the sum of the malignant
    classes, the top class is one class, and its code needs words."""
    out = run_cli("--force", inputs["dark"]).stdout
    assert "melanoma + basal cell carcinoma + actinic keratosis/SCC" in out
    assert "most likely single class: " in out and "[" in out


def test_text_output_says_not_a_diagnosis(inputs):
    out = run_cli(inputs["junk"]).stdout
    assert "NOT ACCEPTED (unsupported_format)" in out
    assert "not a diagnosis" in out


def test_usage_error_exits_non_zero():
    proc = run_cli(check=False)
    assert proc.returncode == 2 and "usage" in proc.stderr.lower()
