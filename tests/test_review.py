"""Maintainers' review (issue #4): Telegram flow for admins, access control, CLI round trips."""

import asyncio
import csv
from datetime import timedelta

import numpy as np
import pytest
from sqlalchemy import select, update

from bot.admin.handlers import reason_label
from bot.admin.review import Review, Verdict, agrees, label_from
from bot.i18n import t
from bot.infra.storage import CONSENT_YES, Storage, Submission, now

from .conftest import jpeg_bytes, needs_shared, skin_with_spot
from .fake_telegram import buttons
from .test_bot_e2e import accepted_photo, start_user

ADMIN, ADMIN2, USER = 500, 501, 10


async def two_cases(h):
    """A consenting user sends one accepted and one too-dark photo."""
    n = await start_user(h, USER, "ru", "yes")
    _, data = accepted_photo(h)
    h.fake.send_photo(USER, data, "ru")
    await h.fake.replies(USER, 1, since=n)
    h.fake.send_photo(USER, jpeg_bytes((skin_with_spot() * 0.1).astype(np.uint8)), "ru")
    await h.fake.replies(USER, 1, since=n + 1)


@needs_shared
@pytest.mark.parametrize("lang", ["kk", "ru", "en"])
async def test_review_flow_with_note_skip_and_second_opinion(bot_factory, lang):
    h = await bot_factory(admin_user_ids=[ADMIN, ADMIN2])
    await two_cases(h)
    h.fake.send_text(ADMIN, "/review", lang)
    (case1,) = await h.fake.replies(ADMIN, 1)
    assert case1["photo_bytes"][:2] == b"\xff\xd8"  # the stored photo itself
    first = case1["text"].splitlines()[0]
    assert first.startswith(t(lang, "admin.case").split("{")[0]) and "1 " in first.replace("#", " ").replace("№", " ") + " "
    assert [b[1] for b in buttons(case1)] == [f"rv:1:{v}" for v in ("agree", "benign", "suspicious", "malignant", "unusable", "skip")]

    h.fake.press(ADMIN, case1, "rv:1:benign", lang)
    (saved,) = await h.fake.replies(ADMIN, 1, since=1)
    assert saved["text"] == t(lang, "admin.saved") and buttons(saved) == [(t(lang, "admin.next"), "rv:next")]
    h.fake.send_text(ADMIN, "looks like a seborrheic keratosis", lang)
    note_ok, case2 = await h.fake.replies(ADMIN, 2, since=2)
    dark = reason_label(lang, "too_dark")  # the reason in the admin's language, not its code
    assert note_ok["text"] == t(lang, "admin.note_saved") and dark in case2["text"] and "too_dark" not in case2["text"]
    assert t(lang, "admin.rejected", reasons=dark) in case2["text"]
    # the accepted case says it was accepted and what the user was told, never "not accepted: —"
    assert t(lang, "admin.rejected", reasons="—") not in case1["text"]
    assert t(lang, "admin.accepted", risk="\x00").split("\x00")[0] in case1["text"]
    for text in (case1["text"], case2["text"]):  # quality measurements named in the admin's language
        assert t(lang, "admin.quality.brightness") in text and ("brightness" not in text or lang == "en")
    h.fake.press(ADMIN, case2, "rv:2:skip", lang)
    (empty,) = await h.fake.replies(ADMIN, 1, since=4)
    assert empty["text"] == t(lang, "admin.no_cases")

    # a second reviewer disagrees; /case shows both verdicts
    h.fake.send_text(ADMIN2, "/case 1", lang)
    (again,) = await h.fake.replies(ADMIN2, 1)
    assert t(lang, "admin.verdict.benign") in again["text"] and "seborrheic" in again["text"]
    h.fake.press(ADMIN2, again, "rv:1:malignant", lang)
    await h.fake.replies(ADMIN2, 1, since=1)
    h.fake.send_text(ADMIN2, "/case 1", lang)
    (both,) = await h.fake.replies(ADMIN2, 1, since=2)
    assert t(lang, "admin.verdict.benign") in both["text"] and t(lang, "admin.verdict.malignant") in both["text"]

    async with h.storage.sessions() as s:
        verdicts = list(await s.scalars(select(Verdict).order_by(Verdict.id)))
        assert [(v.submission_id, v.verdict) for v in verdicts] == [(1, "benign"), (1, "malignant")]
        assert verdicts[0].reviewer == h.storage.pseudonym(ADMIN) and verdicts[1].reviewer == h.storage.pseudonym(ADMIN2)
        assert verdicts[0].note == "looks like a seborrheic keratosis"
        statuses = dict((await s.execute(select(Submission.id, Submission.review_status))).all())
        assert statuses == {1: "reviewed", 2: "unreviewed"}

    h.fake.send_text(ADMIN, "/stats", lang)
    (stats,) = await h.fake.replies(ADMIN, 1, since=5)
    assert stats["text"].count(f"{dark} 1") == 2  # the 7- and the 30-day block
    st = await Review(h.storage).stats(30)
    assert st["submissions"] == 2 and st["disputed_cases"] == 1 and st["verdicts"] == 2


@needs_shared
async def test_non_admins_get_the_normal_answer_and_nothing_else(bot_factory):
    h = await bot_factory(admin_user_ids=[ADMIN])
    await two_cases(h)
    sent_before = len(h.fake.sent[USER])
    for cmd in ("/review", "/stats", "/case 1"):
        h.fake.send_text(USER, cmd, "ru")
    replies = await h.fake.replies(USER, 3, since=sent_before)
    assert [r["text"] for r in replies] == [t("ru", "unsupported")] * 3
    assert not any(c[0] == "sendPhoto" for c in h.fake.calls)
    h.fake.press(USER, replies[0], "rv:1:agree", "ru")  # a forged button press
    await h.fake.quiet(USER, sent_before + 3)
    async with h.storage.sessions() as s:
        assert not list(await s.scalars(select(Verdict)))


def test_agreement_and_labels():
    assert agrees("agree", "high") and agrees("benign", "low") and not agrees("benign", "high")
    assert agrees("suspicious", "moderate") and not agrees("malignant", "low") and agrees("unusable", "low") is None
    assert label_from("agree", "bcc") == ("bcc", "1")
    assert label_from("benign", "nv") == ("nv", "0") and label_from("benign", "mel") == ("", "0")
    assert label_from("malignant", "nv") == ("", "1") and label_from("suspicious", "nv") == ("", "")


async def _seed(tmp_path):
    storage = Storage(f"sqlite+aiosqlite:///{tmp_path / 'data' / 'bot.sqlite3'}", tmp_path / "data" / "photos", (tmp_path / "data" / "pseudonym.secret").read_text().encode())
    review = Review(storage)
    probs = {"mel": 0.05, "bcc": 0.05, "akiec": 0.02, "nv": 0.8, "bkl": 0.04, "other": 0.02, "inflammatory": 0.02}
    ids = []
    for uid in (111111, 222222):
        await storage.upsert_user(uid, language="kk", consent=CONSENT_YES)
        for seed in range(2):
            jpeg = jpeg_bytes(skin_with_spot(size=(300, 400), seed=uid + seed))
            ids.append(await storage.add_submission(uid, jpeg, accepted=True, reasons=[], quality={}, probabilities=probs, risk="low", malignancy=0.12, model_version="m1"))
    await storage.set_followup(111111, ids[0], {"changed": False, "grew": True, "bled": False, "itched": False, "hurt": False, "elevated": True})
    await storage.set_followup(111111, ids[1], {"changed": False, "grew": False, "bled": True, "itched": False, "hurt": False})  # after the result: no "raised"
    await storage.set_advice(111111, ids[0], "14")
    await storage.set_advice(111111, ids[1], "watch")
    assert not await storage.set_advice(222222, ids[0], "30")  # not that user's case
    await review.add_verdict(ids[0], 9, "agree")
    await review.add_verdict(ids[1], 9, "benign")
    await review.add_verdict(ids[2], 9, "suspicious")
    async with storage.sessions.begin() as s:  # one case is old
        await s.execute(update(Submission).where(Submission.id == ids[3]).values(created_at=now() - timedelta(days=400)))
    await storage.close()
    return ids


def _install(tmp_path):
    """What ``python -m bot migrate`` leaves: the database and the secret."""
    from bot.config import Settings
    from bot.infra.migrate import upgrade

    settings = Settings(_env_file=None, data_dir=tmp_path / "data")
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    upgrade(settings.db_url)
    settings.load_secret()


def test_cli_run_elsewhere_creates_nothing(tmp_path, monkeypatch, capsys):
    """Run from another folder, the admin tools used to create an empty database and a NEW
    secret, then report zeros; now they say where they looked and stop."""
    from bot.admin.cli import main

    monkeypatch.setenv("DATA_DIR", str(tmp_path / "elsewhere"))
    monkeypatch.delenv("DATABASE_URL", raising=False)
    assert main(["stats"]) == 2
    assert "no database at" in capsys.readouterr().err
    assert not (tmp_path / "elsewhere").exists()


def test_cli_export_is_a_training_source_without_ids(tmp_path, monkeypatch, capsys):
    from bot.admin.cli import main
    from training.data import read_source

    monkeypatch.setenv("DATA_DIR", str(tmp_path / "data"))
    monkeypatch.delenv("DATABASE_URL", raising=False)
    _install(tmp_path)
    assert main(["stats"]) == 0
    asyncio.run(_seed(tmp_path))
    out = tmp_path / "export"
    assert main(["export", "--out", str(out), "--reviewed-only"]) == 0
    text = (out / "labels.csv").read_text()
    rows = list(csv.DictReader(text.splitlines()))
    assert len(rows) == 3 and all((out / r["image"]).exists() for r in rows)
    # the answers in PAD-UFES-20's columns: before the result (six), after it (five), none
    asked = [tuple(r[k] for k in ("itch", "grew", "hurt", "changed", "bleed", "elevation")) for r in rows]
    assert asked == [("False", "True", "False", "False", "False", "True"), ("False", "False", "False", "False", "True", ""), ("",) * 6]
    assert [r["advice_days"] for r in rows] == ["14", "watch", ""]  # what each user was told
    capsys.readouterr()
    assert main(["export", "--out", str(out)]) == 2  # a second export never mixes with the first
    assert "not an empty folder" in capsys.readouterr().err and len(list((out / "images").iterdir())) == 3
    with pytest.raises(SystemExit):
        main(["export", "--out", str(tmp_path / "x"), "--since", "1 Dec"])
    assert "expected a date as YYYY-MM-DD" in capsys.readouterr().err
    assert "111111" not in text and "222222" not in text
    src = read_source(out)  # the training loader reads it as one more source
    assert len(src.samples) == 2 and {s.label for s in src.samples} == {3}  # "suspicious" has no class
    assert src.samples[0].group == src.samples[1].group  # one person's photos stay together

    capsys.readouterr()
    assert main(["stats", "--json"]) == 0
    assert '"submissions": 3' in capsys.readouterr().out  # the 400-day-old case is outside 30 days


def test_cli_purge_deletes_rows_and_files(tmp_path, monkeypatch, capsys):
    from bot.admin.cli import main

    monkeypatch.setenv("DATA_DIR", str(tmp_path / "data"))
    monkeypatch.delenv("DATABASE_URL", raising=False)
    _install(tmp_path)
    assert main(["stats"]) == 0
    asyncio.run(_seed(tmp_path))
    photos = tmp_path / "data" / "photos"
    assert len(list(photos.rglob("*.jpg"))) == 4
    assert main(["purge", "--older-than", "365"]) == 0
    assert "purged 1 cases and 1 photo files" in capsys.readouterr().out
    assert len(list(photos.rglob("*.jpg"))) == 3
    assert main(["purge", "--older-than", "0"]) == 0
    assert not list(photos.rglob("*.jpg"))


def test_backup_wipe_restore_round_trip(tmp_path, monkeypatch, capsys):
    """Back up, lose the data folder, restore: the same user's history and /delete still work."""
    import shutil

    from bot.admin.cli import main
    from bot.config import Settings
    from bot.infra.storage import Storage

    monkeypatch.setenv("DATA_DIR", str(tmp_path / "data"))
    monkeypatch.delenv("DATABASE_URL", raising=False)
    monkeypatch.delenv("PSEUDONYM_SECRET", raising=False)
    _install(tmp_path)
    asyncio.run(_seed(tmp_path))
    settings = Settings(_env_file=None, data_dir=tmp_path / "data")
    photos_before = sorted(p.relative_to(settings.photos_dir) for p in settings.photos_dir.rglob("*.jpg"))
    archive = tmp_path / "backups" / "bot.tar.gz"
    assert main(["backup", "--out", str(archive)]) == 0
    assert f"{len(photos_before)} photos" in capsys.readouterr().out
    assert oct(archive.stat().st_mode & 0o777) == "0o600"  # it holds the secret

    shutil.rmtree(tmp_path / "data")  # the disk is lost
    assert main(["restore", str(archive)]) == 0
    assert sorted(p.relative_to(settings.photos_dir) for p in settings.photos_dir.rglob("*.jpg")) == photos_before
    assert main(["restore", str(archive)]) == 2  # never over a database that has users, unless --force
    assert "already has" in capsys.readouterr().err

    async def same_user():
        storage = Storage(settings.db_url, settings.photos_dir, settings.secret())
        try:
            history = await storage.history(111111)
            gone = await storage.delete_user(111111)
            return len(history), gone
        finally:
            await storage.close()

    n, gone = asyncio.run(same_user())
    assert n >= 1 and gone.submissions == n and gone.photos >= 1
