"""Storage and migrations on SQLite and, where TEST_POSTGRES_URL is set, on PostgreSQL."""

import asyncio
import os

import pytest
from sqlalchemy import inspect, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import create_async_engine

from bot.infra.migrate import downgrade, upgrade
from bot.infra.storage import CONSENT_NO, CONSENT_YES, InboxRow, Storage
from inference.decode import encode_jpeg

from .conftest import skin_with_spot
from .proxy import NO_POSTGRES, POSTGRES


@pytest.fixture(params=["sqlite", "postgres"])
async def db_url(request, tmp_path):
    if request.param == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp_path / 'test.sqlite3'}"
    else:
        if not POSTGRES:
            pytest.skip(NO_POSTGRES)
        url = POSTGRES
        await asyncio.to_thread(downgrade, url)  # a clean schema whatever an earlier run left
    await asyncio.to_thread(upgrade, url)
    yield url
    if request.param == "postgres":
        await asyncio.to_thread(downgrade, url)


@pytest.fixture
async def storage(db_url, tmp_path):
    s = Storage(db_url, tmp_path / "photos", b"secret")
    yield s
    await s.close()


async def tables(url):
    engine = create_async_engine(url)
    async with engine.connect() as conn:
        names = await conn.run_sync(lambda c: set(inspect(c).get_table_names()))
    await engine.dispose()
    return names


async def test_migrations_up_and_down(db_url):
    assert {"users", "submissions", "alembic_version"} <= await tables(db_url)
    await asyncio.to_thread(downgrade, db_url)
    assert not ({"users", "submissions"} & await tables(db_url))
    await asyncio.to_thread(upgrade, db_url)
    assert {"users", "submissions"} <= await tables(db_url)


def result_fields(**over):
    base = dict(accepted=True, reasons=[], quality={"sharpness": 50.0}, probabilities={"nv": 0.9, "mel": 0.1}, risk="low", malignancy=0.1, model_version="m1")
    return {**base, **over}


async def test_only_consenting_users_are_logged(storage):
    jpeg = encode_jpeg(skin_with_spot(size=(240, 320)))
    assert await storage.add_submission(1, jpeg, **result_fields()) is None  # unknown user
    await storage.upsert_user(1, language="kk", consent=CONSENT_NO)
    assert await storage.add_submission(1, jpeg, **result_fields()) is None
    assert not storage.photos.root.exists() or not any(storage.photos.root.rglob("*.jpg"))
    await storage.upsert_user(1, consent=CONSENT_YES)
    sid = await storage.add_submission(1, jpeg, **result_fields())
    assert sid and await storage.count_submissions() == 1
    assert await storage.set_followup(1, sid, {"bled": True})
    assert not await storage.set_followup(2, sid, {"bled": False})  # not someone else's case
    (row,) = await storage.history(1)
    assert row.followup == {"bled": True} and row.language == "kk" and row.risk == "low"


async def test_users_only_store_language_region_and_consent(storage):
    with pytest.raises(ValueError):
        await storage.upsert_user(5, language="en", first_name="Aigerim")
    user = await storage.upsert_user(5, language="ru", region="almaty")
    assert user.pseudonym == storage.pseudonym(5) != "5"


async def test_delete_removes_rows_and_the_users_folder(storage):
    same = encode_jpeg(skin_with_spot(size=(240, 320), seed=1))  # both users send the same picture
    own = encode_jpeg(skin_with_spot(size=(240, 320), seed=2))
    for uid in (1, 2):
        await storage.upsert_user(uid, language="en", consent=CONSENT_YES)
        await storage.add_submission(uid, same, **result_fields())
    await storage.add_submission(1, own, **result_fields(accepted=False, reasons=["blurry"], risk=None, probabilities=None, malignancy=None))
    files = sorted(storage.photos.root.rglob("*.jpg"))
    assert len(files) == 3  # one copy per user: each user's files live in their own folder

    gone = await storage.delete_user(1)
    assert (gone.submissions, gone.photos) == (2, 2)
    assert await storage.get_user(1) is None and await storage.history(1) == []
    assert not storage.photos.folder(storage.pseudonym(1)).exists()
    left = sorted(storage.photos.root.rglob("*.jpg"))
    assert len(left) == 1 and await storage.count_submissions() == 1  # user 2's case keeps its file
    gone = await storage.delete_user(2)
    assert (gone.submissions, gone.photos) == (1, 1) and not list(storage.photos.root.rglob("*.jpg"))


def test_photo_writes_are_atomic_and_content_addressed(tmp_path):
    from bot.infra.storage import PhotoStore

    store = PhotoStore(tmp_path)
    owner = "f" * 64
    sha, created = store.put(owner, b"abc")
    assert created and store.path(owner, sha).read_bytes() == b"abc" and store.put(owner, b"abc") == (sha, False)
    assert not list(tmp_path.rglob(".tmp-*"))


def test_sweep_removes_leftovers_and_unreferenced_files_after_the_grace_period(tmp_path):
    import time

    from bot.infra.storage import PhotoStore

    store = PhotoStore(tmp_path)
    a, b = "a" * 64, "b" * 64
    kept, _ = store.put(a, b"kept")
    orphan, _ = store.put(a, b"orphan")  # a crash between the file and its row
    legacy = store.legacy_path("c" * 64)
    legacy.parent.mkdir(parents=True)
    legacy.write_bytes(b"old layout, no row")
    tmp = store.folder(b) / ".tmp-crashed"
    tmp.parent.mkdir(parents=True)
    tmp.write_bytes(b"half")
    fresh, _ = store.put(b, b"being written by another replica")
    old = time.time() - 7200
    for p in (store.path(a, kept), store.path(a, orphan), legacy, tmp):
        os.utime(p, (old, old))
    counts = store.sweep({(a, kept)}, grace_s=3600)
    assert counts == {"tmp": 1, "unreferenced": 2}
    assert store.path(a, kept).exists() and store.path(b, fresh).exists()
    assert not store.path(a, orphan).exists() and not legacy.exists() and not tmp.exists()


async def test_a_write_killed_just_before_a_restart_is_removed_at_once(tmp_path):
    """kill -9 mid-write leaves a `.tmp-` copy of a photo inside the user's folder; with a
    database of its own no other process writes there, so the start-up sweep removes what was
    written before this process began, however recent (an hour's grace kept it until someone
    looked), and counts it (bot_swept_files_total{kind="tmp"})."""
    import time

    from bot.infra.migrate import upgrade

    url = f"sqlite+aiosqlite:///{tmp_path / 'db.sqlite3'}"
    await asyncio.to_thread(upgrade, url)
    storage = Storage(url, tmp_path / "photos", b"k")
    leftover = storage.photos.folder("a" * 64) / ".tmp-killed"
    leftover.parent.mkdir(parents=True)
    leftover.write_bytes(b"half a photo")
    started = time.time()
    in_progress = storage.photos.folder("b" * 64) / ".tmp-writing"  # this process's own write, after its start
    in_progress.parent.mkdir(parents=True)
    in_progress.write_bytes(b"being written")
    os.utime(in_progress, (started + 1, started + 1))
    assert await storage.sweep(started_at=started) == {"tmp": 1, "unreferenced": 0}
    assert not leftover.exists() and in_progress.exists()
    await storage.close()


async def test_a_failed_database_write_leaves_no_orphan_photo(storage):
    await storage.upsert_user(7, language="en", consent=CONSENT_YES)
    jpeg = encode_jpeg(skin_with_spot(size=(240, 320), seed=3))
    with pytest.raises(IntegrityError):
        await storage.add_submission(7, jpeg, **result_fields(model_version=None))  # NOT NULL violated
    assert not list(storage.photos.root.rglob("*.jpg"))
    assert await storage.count_submissions() == 0


async def test_inbox_claims_are_exclusive_and_stale_ones_are_taken_over(storage):
    """Two processes on one database: an update is answered by one of them; a stopped owner's
    updates are taken over once stale; a repeated delivery is recognised, also after its answer."""
    rows = [(u, 7, {"update_id": u}) for u in range(1, 41)]
    assert await storage.inbox_add(rows[:30], "a" * 32) == set(range(1, 31))
    assert await storage.inbox_add(rows[20:], "b" * 32) == set(range(31, 41)), "21–30 are already a's"
    assert await storage.inbox_claim("c" * 32, stale_s=60) == [], "fresh claims are not taken over"
    await storage.inbox_done(1)
    await asyncio.sleep(0.3)
    assert await storage.inbox_heartbeat("b" * 32) == 10
    claimed = await asyncio.gather(storage.inbox_claim("c" * 32, stale_s=0.2), storage.inbox_claim("d" * 32, stale_s=0.2))
    ids = [r.update_id for rs in claimed for r in rs]
    assert sorted(ids) == list(range(2, 31)), "a's unanswered rows, each taken by exactly one process; b is alive"
    assert await storage.inbox_add(rows[:1], "e" * 32) == set(), "answered, then delivered again: not answered twice"
    async with storage.sessions() as s:
        pending = set(await s.scalars(select(InboxRow.update_id).where(InboxRow.done_at.is_(None))))
    assert pending == set(range(2, 41))
    assert await storage.inbox_purge(keep_s=3600) == 0
    assert await storage.inbox_purge(keep_s=0) == 1


async def test_one_case_per_update(storage):
    await storage.upsert_user(7, language="en", consent=CONSENT_YES)
    jpeg = encode_jpeg(skin_with_spot(size=(240, 320), seed=5))
    first = await storage.add_submission(7, jpeg, update_id=555, **result_fields())
    again = await storage.add_submission(7, jpeg, update_id=555, **result_fields())
    other = await storage.add_submission(7, jpeg, update_id=556, **result_fields())
    assert first == again != other
    assert await storage.count_submissions() == 2


async def test_replicas_starting_together_agree_on_the_secret(db_url, tmp_path):
    """Two processes check the secret of a new database at the same moment: both start (the
    fingerprint is written once); a process with another secret is still refused."""
    from bot.infra.storage import SecretMismatch

    same = [Storage(db_url, tmp_path / "photos", b"shared-secret") for _ in range(4)]
    try:
        assert await asyncio.gather(*(s.check_secret(created_now=False) for s in same)) == [0, 0, 0, 0]
    finally:
        for s in same:
            await s.close()
    other = Storage(db_url, tmp_path / "photos", b"another")
    try:
        with pytest.raises(SecretMismatch):
            await other.check_secret(created_now=False)
    finally:
        await other.close()


async def test_an_update_is_marked_done_when_its_answer_goes_out_not_when_its_handler_ends(tmp_path):
    """The at-least-once window: a handler marks its update answered right after the result, and
    the row is done while the handler still waits (on a consent question behind the rate limit,
    say); a kill -9 then does not send that result again. Its own end marks nothing twice."""
    from telegram import Update

    from bot.infra.intake import DONE_BATCH_S, InboxProcessor
    from bot.infra.migrate import upgrade
    from bot.infra.storage import InboxRow

    url = f"sqlite+aiosqlite:///{tmp_path / 'db.sqlite3'}"
    await asyncio.to_thread(upgrade, url)
    storage = Storage(url, tmp_path / "photos", b"k")
    await storage.inbox_add([(41, 7, {"update_id": 41})], "me")
    processor = InboxProcessor(4)
    processor.storage = storage
    rest = asyncio.Event()
    marks = []
    real_done = storage.inbox_done

    async def counting_done(ids):
        marks.append(list(ids))
        await real_done(ids)

    storage.inbox_done = counting_done

    async def handler():
        processor.answered(41)  # the result was sent
        await rest.wait()  # …the rest of the handler is still running

    task = asyncio.create_task(processor.do_process_update(Update(41), handler()))
    await asyncio.sleep(DONE_BATCH_S * 6)
    async with storage.sessions() as s:
        assert (await s.get(InboxRow, 41)).done_at is not None, "done while the handler still runs"
    rest.set()
    await task
    await asyncio.sleep(DONE_BATCH_S * 4)
    assert marks == [[41]], "one commit for the update, not one more at the handler's end"
    await storage.close()


async def test_an_answer_journalled_before_a_kill_is_not_sent_again(tmp_path):
    """A process owning its database journals an answered id the moment it is answered; killed
    before the done mark's commit, its successor replays the journal before taking anything over,
    so that update is not answered twice."""
    from bot.infra.intake import InboxProcessor
    from bot.infra.migrate import upgrade
    from bot.infra.storage import InboxRow

    url = f"sqlite+aiosqlite:///{tmp_path / 'db.sqlite3'}"
    await asyncio.to_thread(upgrade, url)
    storage = Storage(url, tmp_path / "photos", b"k")
    await storage.inbox_add([(51, 7, {"update_id": 51}), (52, 7, {"update_id": 52})], "dead")
    killed = InboxProcessor(4)
    killed.storage = storage
    killed.use_journal(tmp_path / "answered.journal")
    killed.answered(51)  # answered; the batch commit never happens (the process is "killed" now)
    killed._flushing.cancel()
    assert (tmp_path / "answered.journal").read_text() == "51\n"

    successor = InboxProcessor(4)
    successor.storage = storage
    successor.use_journal(tmp_path / "answered.journal")
    assert await successor.replay_journal() == 1
    async with storage.sessions() as s:
        assert (await s.get(InboxRow, 51)).done_at is not None, "answered before the kill: not taken over"
        assert (await s.get(InboxRow, 52)).done_at is None, "never answered: still taken over"
    assert (tmp_path / "answered.journal").read_text() == "", "emptied once committed"
    await storage.close()
