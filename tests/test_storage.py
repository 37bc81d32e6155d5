"""Storage and migrations on SQLite and, where TEST_POSTGRES_URL is set, on PostgreSQL."""

import asyncio
import os

import pytest
from sqlalchemy import inspect
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import create_async_engine

from bot.migrate import downgrade, upgrade
from bot.storage import CONSENT_NO, CONSENT_YES, Storage
from inference.decode import encode_jpeg

from .conftest import skin_with_spot

POSTGRES = os.environ.get("TEST_POSTGRES_URL")


@pytest.fixture(params=["sqlite", "postgres"])
async def db_url(request, tmp_path):
    if request.param == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp_path / 'test.sqlite3'}"
    else:
        if not POSTGRES:
            pytest.skip("TEST_POSTGRES_URL is not set (no PostgreSQL server on this machine); .ci/run sets it")
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


async def test_delete_removes_rows_and_only_unshared_files(storage):
    shared = encode_jpeg(skin_with_spot(size=(240, 320), seed=1))
    own = encode_jpeg(skin_with_spot(size=(240, 320), seed=2))
    for uid in (1, 2):
        await storage.upsert_user(uid, language="en", consent=CONSENT_YES)
        await storage.add_submission(uid, shared, **result_fields())
    await storage.add_submission(1, own, **result_fields(accepted=False, reasons=["blurry"], risk=None, probabilities=None, malignancy=None))
    files = sorted(storage.photos.root.rglob("*.jpg"))
    assert len(files) == 2

    gone = await storage.delete_user(1)
    assert (gone.submissions, gone.photos) == (2, 1)
    assert await storage.get_user(1) is None and await storage.history(1) == []
    left = sorted(storage.photos.root.rglob("*.jpg"))
    assert len(left) == 1 and await storage.count_submissions() == 1  # user 2's case keeps its file
    gone = await storage.delete_user(2)
    assert (gone.submissions, gone.photos) == (1, 1) and not list(storage.photos.root.rglob("*.jpg"))


def test_photo_writes_are_atomic_and_content_addressed(tmp_path):
    from bot.storage import PhotoStore

    store = PhotoStore(tmp_path)
    sha, created = store.put(b"abc")
    assert created and store.path(sha).read_bytes() == b"abc" and store.put(b"abc") == (sha, False)
    assert not list(tmp_path.rglob(".tmp-*"))


async def test_a_failed_database_write_leaves_no_orphan_photo(storage):
    await storage.upsert_user(7, language="en", consent=CONSENT_YES)
    jpeg = encode_jpeg(skin_with_spot(size=(240, 320), seed=3))
    with pytest.raises(IntegrityError):
        await storage.add_submission(7, jpeg, **result_fields(model_version=None))  # NOT NULL violated
    assert not list(storage.photos.root.rglob("*.jpg"))
    assert await storage.count_submissions() == 0
