"""Behaviour of the object store, the same tests for a local directory and for GCS (a real in-process
``gcp-storage-emulator`` server; it ignores ``ifGenerationMatch``, so no-clobber is checked client-side too)."""

from __future__ import annotations

import os
import re
import socket
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from google.api_core import exceptions as gexc
from google.auth.credentials import AnonymousCredentials
from google.cloud import storage
from google.cloud.storage.blob import Blob

from soilclay.errors import BadInputError, FinalExternalError, TransientExternalError
from soilclay.io.store import GcsStore, LocalStore, ObjectStore, open_store

BUCKET = "soilclay-test"
KEY = "composites/2024/t32uqd.tif"


class Crash(BaseException):
    """Stands for the process dying: no ``except Exception`` clean-up runs, as after a SIGKILL."""


@dataclass
class Case:
    store: ObjectStore
    #: make the final, visible step of a publish raise ``exc`` (after ``after`` successful calls)
    break_commit: Callable[[pytest.MonkeyPatch, BaseException, int], None]
    #: what an ordinary failure of that step surfaces as
    commit_error: BaseException
    expected_error: type[BaseException]


def _failing(original: Callable, exc: BaseException, after: int) -> Callable:
    calls = {"n": 0}

    def wrapper(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] > after:
            raise exc
        return original(*args, **kwargs)

    return wrapper


def _break_local(monkeypatch: pytest.MonkeyPatch, exc: BaseException, after: int = 0) -> None:
    for name in ("link", "replace", "rename"):  # the atomic moves that make a local publish visible
        monkeypatch.setattr(os, name, _failing(getattr(os, name), exc, after))


def _break_gcs(monkeypatch: pytest.MonkeyPatch, exc: BaseException, after: int = 0) -> None:
    monkeypatch.setattr(Blob, "rewrite", _failing(Blob.rewrite, exc, after))  # the server-side copy to final


@pytest.fixture(scope="session")
def gcs_client() -> Iterator[storage.Client]:
    """A real emulator server on a free port of 127.0.0.1 for the whole session, stopped at the end."""
    from gcp_storage_emulator.server import create_server

    server = create_server("127.0.0.1", 0, in_memory=True, default_bucket=BUCKET)  # port 0: the OS picks
    server.start()
    port = server._api._httpd.server_address[1]  # no public accessor for the bound port
    try:
        with pytest.MonkeyPatch.context() as mp:
            mp.setenv("STORAGE_EMULATOR_HOST", f"http://127.0.0.1:{port}")
            yield storage.Client(project="test", credentials=AnonymousCredentials())
    finally:
        server.stop()
    with pytest.raises(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
        pass  # the server is really gone


@pytest.fixture(params=["local", "gcs"])
def case(request, tmp_path) -> Case:
    if request.param == "local":
        return Case(LocalStore(tmp_path / "store"), _break_local, OSError("disk gone"), OSError)
    client = request.getfixturevalue("gcs_client")
    store = GcsStore(BUCKET, f"t-{uuid.uuid4().hex[:12]}/soilclay", client=client)  # a fresh prefix per test
    return Case(store, _break_gcs, gexc.ServiceUnavailable("backend down"), TransientExternalError)


@pytest.fixture
def store(case) -> ObjectStore:
    return case.store


@pytest.fixture
def tiff(tmp_path) -> tuple[Path, bytes]:
    data = os.urandom(300_000)  # GeoTIFF-sized random payload
    path = tmp_path / "src" / "t32uqd.tif"
    path.parent.mkdir()
    path.write_bytes(data)
    return path, data


def _write(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


@pytest.fixture
def saved_model(tmp_path) -> Path:
    root = tmp_path / "model"
    _write(root / "saved_model.pb", b"graph" * 100)
    _write(root / "variables" / "variables.index", b"index")
    _write(root / "variables" / "variables.data-00000-of-00001", os.urandom(50_000))
    return root


def test_store_satisfies_protocol(store):
    assert isinstance(store, ObjectStore)


def test_publish_read_exists_list_download_round_trip(store, tiff, tmp_path):
    path, data = tiff
    assert not store.exists(KEY)
    uri = store.publish_file(path, KEY)
    assert uri == store.uri(KEY)
    assert uri.endswith("/" + KEY) and (uri.startswith("gs://") or Path(uri).is_absolute())
    assert store.exists(KEY)
    assert store.read_bytes(KEY) == data
    out = store.download(KEY, tmp_path / "dl" / "copy.tif")
    assert out == tmp_path / "dl" / "copy.tif" and out.read_bytes() == data
    assert store.list() == [KEY]
    assert store.list("composites/") == [KEY]
    assert store.list("composites/2024/t32") == [KEY]
    assert store.list("reports/") == []
    assert not store.exists("composites/2024/other.tif")


def test_republishing_same_content_is_a_no_op_and_different_content_is_refused(store, tiff, tmp_path):
    path, data = tiff
    store.publish_file(path, KEY)
    assert store.publish_file(path, KEY) == store.uri(KEY)  # e.g. a retried task
    other = _write(tmp_path / "other.tif", b"changed")
    with pytest.raises(BadInputError, match=re.escape(store.uri(KEY))):
        store.publish_file(other, KEY)
    assert store.read_bytes(KEY) == data
    store.publish_file(other, KEY, overwrite=True)
    assert store.read_bytes(KEY) == b"changed"
    assert store.list() == [KEY]


def test_write_bytes_round_trip_and_no_clobber(store):
    key = "reports/run-1/summary.json"
    assert store.write_bytes(key, b'{"n": 1}') == store.uri(key)
    store.write_bytes(key, b'{"n": 1}')
    with pytest.raises(BadInputError, match="overwrite=True"):
        store.write_bytes(key, b'{"n": 2}')
    store.write_bytes(key, b'{"n": 2}', overwrite=True)
    assert store.read_bytes(key) == b'{"n": 2}'
    assert store.list("reports/") == [key]


def test_publish_dir_is_complete_and_idempotent(store, saved_model, tmp_path):
    prefix = "models/clay/1"
    assert not store.is_complete(prefix)
    assert store.publish_dir(saved_model, prefix) == store.uri(prefix)
    assert store.is_complete(prefix)
    rels = ["_COMPLETE", "saved_model.pb", "variables/variables.data-00000-of-00001", "variables/variables.index"]
    assert store.list(prefix + "/") == [f"{prefix}/{rel}" for rel in rels]
    assert store.read_bytes(f"{prefix}/saved_model.pb") == b"graph" * 100
    store.publish_dir(saved_model, prefix)  # same tree again: fine

    (saved_model / "variables" / "variables.index").unlink()
    _write(saved_model / "assets" / "vocab.txt", b"clay")
    with pytest.raises(BadInputError, match=re.escape(store.uri(prefix))):
        store.publish_dir(saved_model, prefix)
    store.publish_dir(saved_model, prefix, overwrite=True)
    assert store.is_complete(prefix)
    assert store.list(prefix + "/") == [
        f"{prefix}/{rel}"
        for rel in ["_COMPLETE", "assets/vocab.txt", "saved_model.pb", "variables/variables.data-00000-of-00001"]
    ]
    assert store.list() == store.list("models/")  # nothing left in staging or temporaries


def test_crash_mid_publish_leaves_nothing_visible_and_janitor_removes_the_leftover(case, tiff, monkeypatch):
    store = case.store
    case.break_commit(monkeypatch, Crash(), 0)
    with pytest.raises(Crash):
        store.publish_file(tiff[0], KEY)
    monkeypatch.undo()
    assert not store.exists(KEY)
    assert KEY not in store.list() and store.list() == []
    assert store.cleanup_staging(older_than_seconds=3600) == 0  # a young leftover may be a publish in flight
    assert store.cleanup_staging(older_than_seconds=0) == 1
    assert store.cleanup_staging(older_than_seconds=0) == 0
    store.publish_file(tiff[0], KEY)  # a retry after the crash succeeds
    assert store.read_bytes(KEY) == tiff[1]


def test_failed_publish_cleans_up_after_itself(case, tiff, monkeypatch):
    case.break_commit(monkeypatch, case.commit_error, 0)
    with pytest.raises(case.expected_error) as info:
        case.store.publish_file(tiff[0], KEY)
    monkeypatch.undo()
    if case.expected_error is TransientExternalError:
        assert info.value.__cause__ is case.commit_error
    assert not case.store.exists(KEY) and case.store.list() == []
    assert case.store.cleanup_staging(older_than_seconds=0) == 0


def test_crash_mid_publish_dir_leaves_the_prefix_incomplete(case, saved_model, monkeypatch):
    store, prefix = case.store, "models/clay/2"
    case.break_commit(monkeypatch, Crash(), 0)
    with pytest.raises(Crash):
        store.publish_dir(saved_model, prefix)
    monkeypatch.undo()
    assert not store.is_complete(prefix)
    assert store.list() == []
    assert store.cleanup_staging(older_than_seconds=0) >= 1
    store.publish_dir(saved_model, prefix)
    assert store.is_complete(prefix)


def test_gcs_crash_after_some_copies_is_not_complete(gcs_client, saved_model, monkeypatch):
    """On GCS a tree appears file by file: only ``_COMPLETE`` tells readers it is whole."""
    store = GcsStore(BUCKET, f"t-{uuid.uuid4().hex[:12]}", client=gcs_client)
    _break_gcs(monkeypatch, Crash(), 1)
    with pytest.raises(Crash):
        store.publish_dir(saved_model, "models/clay/3")
    monkeypatch.undo()
    assert len(store.list("models/")) == 1
    assert not store.is_complete("models/clay/3")
    store.publish_dir(saved_model, "models/clay/3")
    assert store.is_complete("models/clay/3") and len(store.list("models/")) == 4


@pytest.mark.parametrize("key", ["", "/abs/key.tif", "a/../b.tif", "..", "a//b.tif", "a/", "./a", ".hidden",
                                 "_staging/x.tif", "a\\b.tif"])
def test_invalid_keys_are_refused_naming_the_key(store, tiff, key):
    for call in (lambda: store.exists(key), lambda: store.read_bytes(key), lambda: store.uri(key),
                 lambda: store.publish_file(tiff[0], key), lambda: store.write_bytes(key, b"x"),
                 lambda: store.delete(key)):
        with pytest.raises(BadInputError, match=re.escape(repr(key))):
            call()


@pytest.mark.parametrize("prefix", ["../up", "/abs/", "a//b", "_staging/"])
def test_invalid_list_prefixes_are_refused(store, prefix):
    with pytest.raises(BadInputError, match="invalid object key"):
        store.list(prefix)


def test_missing_objects_raise_file_not_found_naming_the_uri(store, tmp_path):
    key = "reports/missing.json"
    with pytest.raises(FileNotFoundError, match=re.escape(store.uri(key))):
        store.read_bytes(key)
    with pytest.raises(FileNotFoundError, match=re.escape(store.uri(key))):
        store.download(key, tmp_path / "x.json")
    assert not (tmp_path / "x.json").exists()
    assert not any(p.name.startswith(".x.json") for p in tmp_path.iterdir())  # no partial download left
    assert store.delete(key) is False


def test_delete(store, tiff):
    store.publish_file(tiff[0], KEY)
    assert store.delete(KEY) is True
    assert not store.exists(KEY) and store.list() == []


def test_bad_sources_are_refused(store, tmp_path):
    with pytest.raises(BadInputError, match="nothing at"):
        store.publish_file(tmp_path / "nope.tif", KEY)
    (tmp_path / "empty").mkdir()
    with pytest.raises(BadInputError, match="empty tree"):
        store.publish_dir(tmp_path / "empty", "models/x/1")


@pytest.mark.parametrize(
    ("exc", "expected"),
    [
        (gexc.NotFound("gone"), FileNotFoundError),
        (gexc.Forbidden("no access"), FinalExternalError),
        (gexc.Unauthorized("who"), FinalExternalError),
        (gexc.BadRequest("bad"), FinalExternalError),
        (gexc.ServiceUnavailable("later"), TransientExternalError),
        (gexc.TooManyRequests("slow down"), TransientExternalError),
        (gexc.InternalServerError("oops"), TransientExternalError),
        (gexc.GatewayTimeout("slow"), TransientExternalError),
        (ConnectionResetError("reset"), TransientExternalError),
    ],
)
def test_gcs_errors_map_to_the_error_tree(gcs_client, monkeypatch, exc, expected):
    store = GcsStore(BUCKET, "mapped", client=gcs_client)

    def fail(*args, **kwargs):
        raise exc

    monkeypatch.setattr(Blob, "download_as_bytes", fail)
    with pytest.raises(expected, match=re.escape(store.uri("a/b.tif"))) as info:
        store.read_bytes("a/b.tif")
    assert info.value.__cause__ is exc


def test_open_store_chooses_by_scheme(tmp_path, monkeypatch):
    client = object()  # never used: the GCS client is only touched on the first request
    gcs = open_store("gs://my-bucket/some/prefix/", gcs_client=client)
    assert isinstance(gcs, GcsStore) and gcs.url == "gs://my-bucket/some/prefix"
    assert gcs.uri("a.tif") == "gs://my-bucket/some/prefix/a.tif"
    assert open_store("gs://my-bucket").uri("a.tif") == "gs://my-bucket/a.tif"
    local = open_store(f"file://{tmp_path}/store")
    assert isinstance(local, LocalStore) and local.url == str(tmp_path / "store")
    monkeypatch.chdir(tmp_path)
    rel = open_store("var/store")
    assert isinstance(rel, LocalStore) and rel.uri("a.tif") == str(tmp_path / "var" / "store" / "a.tif")


@pytest.mark.parametrize("url", ["s3://bucket/prefix", "https://host/x", "gs://", "gs:///prefix", "gs://Bad_Bucket",
                                 "file://host/x", "file:relative", "", "gs://bucket/a/../b"])
def test_open_store_refuses_other_urls_naming_them(url):
    with pytest.raises(BadInputError, match=re.escape(repr(url))) as info:
        open_store(url)
    assert "gs://bucket[/prefix]" in str(info.value) or "invalid object key" in str(info.value)


def test_open_store_does_not_echo_credentials():
    with pytest.raises(BadInputError) as info:
        open_store("https://user:s3cret@host/store")
    assert "s3cret" not in str(info.value) and "https://***@host/store" in str(info.value)
