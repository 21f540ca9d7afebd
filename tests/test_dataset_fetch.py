"""``fetch``: a local HTTP server serves archives built from real recordings.

The recordings are cut from the allowed Debian package ``klettres-data`` (speech), fetched
with the tool's own Debian code into the shared cache (``$NEXTBLOCK_CACHE``) and reused.
All traffic stays on 127.0.0.1.
"""

from __future__ import annotations

import hashlib
import io
import json
import threading
import time
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import soundfile as sf

from nextblock.dataset.cache import cache_root
from nextblock.dataset.catalog import CatalogEntry, read_catalog
from nextblock.dataset.debian import DebianFetchError, apt_available, ensure_package
from nextblock.dataset.download import fetch_entries


@pytest.fixture(scope="module")
def speech_folder() -> Path:
    if not apt_available():
        pytest.skip("apt-get/dpkg-deb not available: cannot fetch the real recordings (klettres-data)")
    try:
        return ensure_package(cache_root(), "klettres-data") / "usr/share/klettres/en_GB"
    except DebianFetchError as error:
        pytest.skip(f"cannot fetch klettres-data from the Debian mirror: {error}")


def session_zip(clips: list[Path], names: list[str]) -> bytes:
    """A multitrack-like zip: each real clip re-encoded as 16-bit WAV under a stem name."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as bundle:
        for clip, name in zip(clips, names, strict=True):
            audio, rate = sf.read(clip, dtype="float32")
            wav = io.BytesIO()
            sf.write(wav, audio, rate, format="WAV", subtype="PCM_16")
            bundle.writestr(name, wav.getvalue())
    return buffer.getvalue()


class ArchiveServer:
    """Threaded HTTP server on 127.0.0.1 with Range support and scripted failures.

    ``files``: path -> bytes. ``break_once``: paths whose first full GET stops half-way.
    ``fail_once``: paths whose first request gets 503. ``delay_s``: per-request sleep.
    """

    def __init__(self, files: dict[str, bytes], break_once=(), fail_once=(), delay_s: float = 0.0):
        self.files = files
        self.break_once = set(break_once)
        self.fail_once = set(fail_once)
        self.delay_s = delay_s
        self.requests: list[tuple[str, str | None]] = []
        self.active = 0
        self.max_active = 0
        self.lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # quiet
                pass

            def do_GET(self):  # noqa: N802 - http.server API
                # active: requests waiting for their response. It drops before the response is sent,
                # so a client's next request (after it read this response) always finds it dropped;
                # counted until the handler returned, a loaded machine showed jobs + 1 (CI)
                with server.lock:
                    server.requests.append((self.path, self.headers.get("Range")))
                    server.active += 1
                    server.max_active = max(server.max_active, server.active)
                waiting = True
                try:
                    time.sleep(server.delay_s)
                    with server.lock:
                        server.active -= 1
                        waiting = False
                    self._serve()
                finally:
                    if waiting:
                        with server.lock:
                            server.active -= 1

            def _serve(self):
                body = server.files.get(self.path)
                if body is None:
                    self.send_error(404)
                    return
                if self.path in server.fail_once:
                    server.fail_once.discard(self.path)
                    self.send_error(503)
                    return
                start = 0
                range_header = self.headers.get("Range")
                if range_header:
                    start = int(range_header.split("=")[1].split("-")[0])
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
                else:
                    self.send_response(200)
                self.send_header("Content-Length", str(len(body) - start))
                self.end_headers()
                if self.path in server.break_once and not range_header:
                    server.break_once.discard(self.path)
                    self.wfile.write(body[: len(body) // 2])
                    self.wfile.flush()
                    self.connection.shutdown(2)  # drop the connection mid-transfer
                    return
                self.wfile.write(body[start:])

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}{path}"

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture(scope="module")
def archives(speech_folder) -> dict[str, bytes]:
    clips = sorted((speech_folder / "syllab").glob("*.ogg"))[:6]
    if len(clips) < 6:
        pytest.skip("klettres-data has fewer en_GB syllables than expected")
    return {
        "/good.zip": session_zip(clips[0:2], ["Good/01_LeadVox.wav", "Good/BVs_Hi.wav"]),
        "/flaky.zip": session_zip(clips[2:4], ["Flaky/Vox_DT.wav", "Flaky/Choir.wav"]),
        "/tampered.zip": session_zip(clips[4:6], ["Tampered/LeadVox.wav", "Tampered/Harmony.wav"]),
    }


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def entry(title: str, url: str, data: bytes | None = None, sha256: str | None = None) -> CatalogEntry:
    return CatalogEntry(
        title=title,
        artist="Test Band",
        genre="Folk",
        url=url,
        sha256=sha256 if sha256 is not None else (sha(data) if data is not None else None),
        size_bytes=len(data) if data is not None else None,
    )


def test_resume_checksum_quarantine_and_idempotence(tmp_path, archives):
    cache = tmp_path / "cache"
    with ArchiveServer(archives, break_once={"/flaky.zip"}) as server:
        entries = [
            entry("Good", server.url("/good.zip"), archives["/good.zip"]),
            entry("Flaky", server.url("/flaky.zip"), archives["/flaky.zip"]),
            entry("Tampered", server.url("/tampered.zip"), archives["/tampered.zip"], sha256="0" * 64),
        ]
        results = fetch_entries(entries, cache, jobs=2, retries=3, backoff_s=0.01, show_progress=False)
        status = {r.entry.title: r for r in results}
        assert status["Good"].status == "downloaded"
        assert status["Good"].path.read_bytes() == archives["/good.zip"]
        # the flaky archive broke half-way, the retry asked for the rest and completed it
        assert status["Flaky"].status == "downloaded"
        assert status["Flaky"].path.read_bytes() == archives["/flaky.zip"]
        flaky_ranges = [rng for path, rng in server.requests if path == "/flaky.zip"]
        assert flaky_ranges[0] is None and flaky_ranges[1] == f"bytes={len(archives['/flaky.zip']) // 2}-"
        # a checksum mismatch is quarantined, never left among usable archives
        assert status["Tampered"].status == "quarantined"
        assert status["Tampered"].path is None
        assert "sha256" in status["Tampered"].message
        assert [p.name for p in (cache / "quarantine").iterdir()] == [
            Path(status["Tampered"].message.split("moved to ")[1]).name
        ]
        assert not any("tampered" in p.name for p in (cache / "archives").iterdir())
        index = json.loads((cache / "archives" / "index.json").read_text())
        assert {meta["title"] for meta in index.values()} == {"Good", "Flaky"}
        assert all(meta["genre"] == "Folk" for meta in index.values())

        # second run: nothing is downloaded again
        served_before = len(server.requests)
        again = fetch_entries(entries[:2], cache, jobs=2, show_progress=False)
        assert [r.status for r in again] == ["cached", "cached"]
        assert len(server.requests) == served_before


def test_retries_with_backoff_then_404_fails_alone(tmp_path, archives):
    cache = tmp_path / "cache"
    with ArchiveServer(archives, fail_once={"/good.zip"}) as server:
        results = fetch_entries(
            [
                entry("Good", server.url("/good.zip"), archives["/good.zip"]),
                entry("Missing", server.url("/missing.zip")),
            ],
            cache,
            jobs=1,
            retries=2,
            backoff_s=0.05,
            show_progress=False,
        )
    assert results[0].status == "downloaded"  # 503 first, then fine
    assert [p for p, _ in server.requests].count("/good.zip") == 2
    assert results[1].status == "failed" and "404" in results[1].message


def test_parallel_downloads_are_bounded_by_jobs(tmp_path, archives):
    files = {f"/copy{i}.zip": archives["/good.zip"] for i in range(6)}
    with ArchiveServer(files, delay_s=0.15) as server:
        results = fetch_entries(
            [entry(f"Copy {i}", server.url(f"/copy{i}.zip"), files[f"/copy{i}.zip"]) for i in range(6)],
            tmp_path / "cache",
            jobs=2,
            show_progress=False,
        )
    assert all(r.status == "downloaded" for r in results)
    assert server.max_active == 2


def test_archives_already_on_disk_are_copied(tmp_path, archives):
    local = tmp_path / "Local Session.zip"
    local.write_bytes(archives["/good.zip"])
    results = fetch_entries(
        [
            entry("Local", str(local), archives["/good.zip"]),
            entry("Local URL", local.as_uri(), archives["/good.zip"]),
            entry("Gone", str(tmp_path / "gone.zip")),
        ],
        tmp_path / "cache",
        show_progress=False,
    )
    assert [r.status for r in results[:2]] == ["copied", "copied"]
    assert results[0].path.read_bytes() == archives["/good.zip"]
    assert results[2].status == "failed" and "does not exist" in results[2].message


def test_catalog_rows_without_url_are_reported_and_the_rest_is_read(tmp_path):
    catalog = tmp_path / "catalog.csv"
    catalog.write_text(
        "title,artist,genre,url,sha256,size\n"
        "Song A,Band,Rock,http://127.0.0.1:1/a.zip,,1000\n"
        "Song B,Band,Rock,,,\n"
        "Song C,Band,Jazz,http://127.0.0.1:1/c.zip,nothex,\n"
        "Song D,Band,Jazz,http://127.0.0.1:1/d.zip,,12kB\n"
    )
    entries, problems = read_catalog(catalog)
    assert [e.title for e in entries] == ["Song A"]
    assert entries[0].size_bytes == 1000 and entries[0].genre == "Rock"
    assert [(p.row, p.reason.split()[0]) for p in problems] == [(2, "no"), (3, "sha256"), (4, "size")]
    as_json = tmp_path / "catalog.json"
    as_json.write_text(
        json.dumps({"sessions": [{"Title": "Song A", "URL": "x.zip", "Genre": "Pop"}, {"title": "No url"}]})
    )
    entries, problems = read_catalog(as_json)
    assert entries[0].url == "x.zip" and entries[0].genre == "Pop"
    assert problems[0].reason == "no URL"


def test_duplicate_urls_are_fetched_once(tmp_path, archives):
    with ArchiveServer(archives) as server:
        url = server.url("/good.zip")
        results = fetch_entries(
            [entry("Good", url, archives["/good.zip"]), entry("Good again", url, archives["/good.zip"])],
            tmp_path / "cache",
            jobs=2,
            show_progress=False,
        )
    assert [r.status for r in results] == ["downloaded", "downloaded"]
    assert results[0].path == results[1].path and results[1].entry.title == "Good again"
    assert [p for p, _ in server.requests] == ["/good.zip"]


def _zip_bytes(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as bundle:
        for name, data in members.items():
            bundle.writestr(name, data)
    return buffer.getvalue()


def test_game_archives_in_a_package_are_unpacked_beside_it_once(tmp_path):
    """ufoai-music and nexuiz-music keep their music in .pk3 (zip) files: the audio in them is
    unpacked under <package>/pk3/ so training finds it; a second call does nothing."""
    from nextblock.dataset.debian import unpack_game_archives
    from nextblock.model.audio_files import find_audio_files

    package = tmp_path / "ufoai-music"
    archive = package / "usr/share/games/ufoai/base/0music.pk3"
    archive.parent.mkdir(parents=True)
    tone = io.BytesIO()
    sf.write(tone, [0.1, -0.1] * 2000, 48000, format="OGG")
    archive.write_bytes(_zip_bytes({"music/": b"", "music/battle.ogg": tone.getvalue()}))

    assert unpack_game_archives(package) == 1
    unpacked = package / "pk3/usr/share/games/ufoai/base/0music.pk3/music/battle.ogg"
    assert unpacked.read_bytes() == tone.getvalue()
    assert [f.path for f in find_audio_files([package])] == [unpacked.resolve()]
    assert unpack_game_archives(package) == 0  # done before: skipped, nothing nested unpacked again


def test_an_unsafe_game_archive_is_refused_and_leaves_nothing(tmp_path):
    from nextblock.dataset.debian import unpack_game_archives

    package = tmp_path / "nexuiz-music"
    package.mkdir()
    (package / "music.pk3").write_bytes(_zip_bytes({"../escape.ogg": b"x"}))
    with pytest.raises(DebianFetchError, match="music.pk3.*traversal"):
        unpack_game_archives(package)
    assert not any(p.is_file() for p in (package / "pk3").rglob("*")) and not (tmp_path / "escape.ogg").exists()
