"""Downloads that never leave a wrong file behind.

A file is written to ``<name>.part``, checked (an HTML error page served with
status 200, a truncated gzip or 7z archive, JSON that does not parse are refused),
hashed, then renamed: the destination is either the previous file or the whole new
one. An interrupted transfer resumes from the ``.part`` with an HTTP ``Range``
request (``If-Range`` guards against a file changed meanwhile). Server errors
(5xx, 429) and timeouts are retried with an exponential backoff; other statuses
(404…) fail at once. With the validators of the cached copy (``ETag``,
``Last-Modified``) the request is conditional: an unchanged file answers 304 and
is not downloaded again.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import logging
import os
import threading
import time
import zlib
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, TypeVar

import requests

from observatoire import __version__
from observatoire.errors import SourceError

logger = logging.getLogger(__name__)

USER_AGENT = f"observatoire/{__version__} (observatoire du foncier économique)"
#: Statuses worth another try: the server is busy or failing for a while.
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
CHUNK = 1 << 16
_SEVEN_ZIP_MAGIC = b"7z\xbc\xaf\x27\x1c"

T = TypeVar("T")
R = TypeVar("R")


class DownloadError(SourceError):
    """A publisher's answer could not be used: it names the URL and the HTTP status.

    Attributes
    ----------
    url
        The URL requested.
    status
        The HTTP status of the last answer, or ``None`` when there was none
        (connection refused, timeout, refused content).
    """

    def __init__(self, message: str, *, url: str, status: int | None = None) -> None:
        super().__init__(message)
        self.url = url
        self.status = status


class ByteBar(Protocol):
    """The bar of one transfer (a :class:`tqdm.tqdm` is one)."""

    def update(self, n: int) -> object:
        """Count ``n`` more bytes."""
        ...

    def close(self) -> None:
        """End the transfer."""
        ...


class ByteProgress(Protocol):
    """Where a download reports its bytes (the CLI draws a bar on a terminal)."""

    def __call__(self, label: str, total: int | None) -> ByteBar:
        """Start counting a transfer of ``total`` bytes (``None``: unknown)."""
        ...


class _NoBar:
    def update(self, n: int) -> None:
        pass

    def close(self) -> None:
        pass


def no_progress(label: str, total: int | None) -> ByteBar:
    """Show nothing (the default :class:`ByteProgress`)."""
    return _NoBar()


@dataclass(frozen=True)
class Validators:
    """The HTTP validators of a copy: ``ETag`` and ``Last-Modified``."""

    etag: str | None = None
    last_modified: str | None = None

    @classmethod
    def of(cls, response: requests.Response) -> Validators:
        """Return the validators an answer carries."""
        return cls(response.headers.get("ETag"), response.headers.get("Last-Modified"))

    def as_dict(self) -> dict[str, str | None]:
        """JSON form."""
        return {"etag": self.etag, "last_modified": self.last_modified}


@dataclass(frozen=True)
class Downloaded:
    """The outcome of :meth:`Client.download`.

    Attributes
    ----------
    path
        The destination file.
    changed
        ``False`` when the server answered 304: the file on disk is current.
    validators
        The validators of the copy on disk.
    size, sha256
        Size and SHA-256 of the file written (``None`` when unchanged).
    """

    path: Path
    changed: bool
    validators: Validators
    size: int | None = None
    sha256: str | None = None


class Client:
    """An HTTP client with retries, a concurrency limit and checked downloads.

    Parameters
    ----------
    timeout
        Seconds to wait to connect and for each read; a slower answer is retried.
    retries
        Further tries after a timeout, a cut connection or a 5xx/429 answer.
    backoff
        Seconds before the first retry, doubled at each one.
    workers
        Requests at once (:meth:`map`): publishers throttle clients that open more.
    progress
        Receives the bytes of each download.
    """

    def __init__(self, *, timeout: float = 60.0, retries: int = 4, backoff: float = 1.0,
                 workers: int = 4, progress: ByteProgress = no_progress) -> None:
        self.timeout = timeout
        self.retries = retries
        self.backoff = backoff
        self.workers = workers
        self.progress = progress
        self._local = threading.local()

    @property
    def session(self) -> requests.Session:
        """A session per thread (a session is not safe to share between threads)."""
        session = getattr(self._local, "session", None)
        if session is None:
            session = requests.Session()
            session.headers["User-Agent"] = USER_AGENT
            self._local.session = session
        return session

    def map(self, function: Callable[[T], R], items: Iterable[T]) -> list[R]:
        """Apply ``function`` to ``items``, at most :attr:`workers` at once; results in order."""
        items = list(items)
        if self.workers <= 1 or len(items) <= 1:
            return [function(item) for item in items]
        with ThreadPoolExecutor(max_workers=self.workers) as pool:
            return list(pool.map(function, items))

    def _tries(self, url: str) -> Iterator[int]:
        """Yield the try numbers, sleeping with backoff between them."""
        for attempt in range(self.retries + 1):
            if attempt:
                delay = self.backoff * 2 ** (attempt - 1)
                logger.info("nouvel essai %d/%d dans %.1f s : %s", attempt, self.retries,
                            delay, url)
                time.sleep(delay)
            yield attempt

    def get(self, url: str, *, params: dict[str, str] | None = None,
            headers: dict[str, str] | None = None) -> requests.Response:
        """GET a small answer (read whole), retrying on 5xx, 429, timeouts and cuts.

        Raises
        ------
        DownloadError
            A 4xx answer, or the last failure once the retries are spent.
        """
        last: DownloadError | None = None
        for _ in self._tries(url):
            try:
                response = self.session.get(url, params=params, headers=headers,
                                            timeout=self.timeout)
                _ = response.content  # read the body inside the try: a cut is retried
            except requests.RequestException as exc:
                last = _network_error(url, exc, self.timeout)
                continue
            if response.status_code in RETRY_STATUSES:
                last = _status_error(response)
                continue
            if response.status_code >= 400:
                raise _status_error(response)
            return response
        assert last is not None
        raise last

    def get_json(self, url: str, *, params: dict[str, str] | None = None) -> Any:
        """GET a JSON answer, refusing an HTML page or text that does not parse.

        Raises
        ------
        DownloadError
            As :meth:`get`, or an answer that is not JSON.
        """
        response = self.get(url, params=params, headers={"Accept": "application/json"})
        shown = response.url
        if _looks_like_html(response.content[:512], response.headers.get("Content-Type")):
            raise DownloadError(f"{shown} : page HTML reçue au lieu de données JSON (statut "
                                f"{response.status_code}) ; le service est peut-être en "
                                f"maintenance, réessayez plus tard", url=shown,
                                status=response.status_code)
        try:
            return json.loads(response.content)
        except ValueError as exc:
            raise DownloadError(f"{shown} : réponse JSON illisible ({exc}) ; réessayez plus "
                                f"tard", url=shown, status=response.status_code) from None

    def download(self, url: str, dest: Path, *, expect: str,
                 validators: Validators | None = None, label: str | None = None) -> Downloaded:
        """Download ``url`` to ``dest``, atomically, resuming and retrying.

        Parameters
        ----------
        url
            The file.
        dest
            Where it goes; replaced only by a whole, checked file.
        expect
            What the file must be: ``gzip``, ``7z``, ``json`` or ``binaire``.
        validators
            Validators of the current copy (at ``dest`` or elsewhere in the cache): the
            request is then conditional, and a 304 answer downloads nothing.
        label
            Name shown by the progress bar.

        Returns
        -------
        Downloaded
            Whether the file changed, its validators, size and SHA-256.

        Raises
        ------
        DownloadError
            A 4xx answer, a refused content (HTML page, truncated archive), or the
            last failure once the retries are spent; ``dest`` is left as it was.
        """
        part = dest.with_name(dest.name + ".part")
        meta = dest.with_name(dest.name + ".part.json")
        conditional = validators
        last: DownloadError | None = None
        for _ in self._tries(url):
            try:
                outcome = self._transfer(url, dest, part, meta, conditional, label)
            except _Retry as exc:
                last = exc.error
                continue
            if outcome is not None:
                return outcome
            break
        else:
            assert last is not None
            raise last
        try:
            _check_content(part, expect, url)
        except DownloadError:
            part.unlink(missing_ok=True)
            meta.unlink(missing_ok=True)
            raise
        got = Validators(**json.loads(meta.read_text(encoding="utf-8")))
        size, digest = part.stat().st_size, sha256_of(part)
        os.replace(part, dest)
        meta.unlink(missing_ok=True)
        return Downloaded(dest, True, got, size, digest)

    def _transfer(self, url: str, dest: Path, part: Path, meta: Path,
                  conditional: Validators | None, label: str | None) -> Downloaded | None:
        """One try: ``None`` when ``part`` holds the whole body; a result when unchanged."""
        headers: dict[str, str] = {}
        if conditional is not None:
            if conditional.etag:
                headers["If-None-Match"] = conditional.etag
            if conditional.last_modified:
                headers["If-Modified-Since"] = conditional.last_modified
        offset = part.stat().st_size if part.exists() and meta.exists() else 0
        if offset:
            previous = Validators(**json.loads(meta.read_text(encoding="utf-8")))
            headers["Range"] = f"bytes={offset}-"
            if previous.etag or previous.last_modified:
                headers["If-Range"] = str(previous.etag or previous.last_modified)
        try:
            response = self.session.get(url, headers=headers, stream=True, timeout=self.timeout)
        except requests.RequestException as exc:
            raise _Retry(_network_error(url, exc, self.timeout)) from None
        with response:
            status = response.status_code
            if status == 304 and conditional is not None:
                return Downloaded(dest, False, conditional)
            if status in RETRY_STATUSES:
                raise _Retry(_status_error(response))
            if status == 416:  # the part is stale (the file shrank): start again
                part.unlink(missing_ok=True)
                raise _Retry(_status_error(response))
            if status >= 400:
                raise _status_error(response)
            part.parent.mkdir(parents=True, exist_ok=True)  # not before: a 304 writes nothing
            if status != 206:
                offset = 0
                meta.write_text(json.dumps(Validators.of(response).as_dict()), encoding="utf-8")
            total = _expected_total(response, offset)
            bar = self.progress(label or dest.name, total)
            if offset:
                bar.update(offset)
            try:
                with part.open("ab" if offset else "wb") as out:
                    for chunk in response.iter_content(CHUNK):
                        out.write(chunk)
                        bar.update(len(chunk))
            except requests.RequestException as exc:
                raise _Retry(_network_error(url, exc, self.timeout)) from None
            finally:
                bar.close()
        written = part.stat().st_size
        if total is not None and written != total:
            raise _Retry(DownloadError(
                f"{url} : transfert interrompu ({written} octets sur {total})", url=url,
                status=status))
        return None


class _Retry(Exception):
    def __init__(self, error: DownloadError) -> None:
        self.error = error


def _expected_total(response: requests.Response, offset: int) -> int | None:
    """Size of the whole file: from ``Content-Range`` (206) or ``Content-Length``."""
    if response.status_code == 206:
        content_range = response.headers.get("Content-Range", "")
        total = content_range.rpartition("/")[2]
        return int(total) if total.isdigit() else None
    length = response.headers.get("Content-Length")
    # A gzip transfer encoding makes Content-Length the compressed size: not comparable.
    if length and length.isdigit() and not response.headers.get("Content-Encoding"):
        return int(length) + offset
    return None


def _status_error(response: requests.Response) -> DownloadError:
    status = response.status_code
    hint = {404: "le fichier n'est pas (ou plus) publié à cette adresse ; vérifiez le "
                 "millésime et le code",
            403: "accès refusé par le serveur",
            429: "trop de requêtes : le serveur limite le débit, réessayez plus tard"}.get(
        status, "erreur du serveur, réessayez plus tard" if status >= 500 else "requête refusée")
    return DownloadError(f"{response.url} : HTTP {status} ({hint})", url=response.url,
                         status=status)


def _network_error(url: str, exc: requests.RequestException, timeout: float) -> DownloadError:
    if isinstance(exc, requests.Timeout):
        return DownloadError(f"{url} : pas de réponse en {timeout:g} s (délai dépassé) ; "
                             f"réessayez plus tard ou augmentez --delai", url=url)
    return DownloadError(f"{url} : connexion impossible ou coupée ({type(exc).__name__}) ; "
                         f"vérifiez l'accès à Internet", url=url)


def _looks_like_html(head: bytes, content_type: str | None) -> bool:
    start = head.lstrip().lower()
    return (start.startswith((b"<!doctype html", b"<html", b"<head", b"<body"))
            or (content_type or "").split(";")[0].strip() == "text/html")


def _check_content(path: Path, expect: str, url: str) -> None:
    """Refuse an HTML error page, a truncated archive or JSON that does not parse."""
    with path.open("rb") as f:
        head = f.read(512)
    if _looks_like_html(head, None):
        raise DownloadError(f"{url} : page HTML reçue (statut 200) au lieu du fichier attendu "
                            f"({expect}) ; rien n'a été mis en cache", url=url, status=200)
    try:
        if expect == "gzip":
            if not head.startswith(b"\x1f\x8b"):
                raise ValueError("ce n'est pas une archive gzip")
            with gzip.open(path, "rb") as src:
                while src.read(1 << 20):
                    pass
        elif expect == "7z":
            _check_7z(path, head)
        elif expect == "json":
            json.loads(path.read_bytes())
    except (OSError, EOFError, ValueError, zlib.error) as exc:
        raise DownloadError(f"{url} : fichier reçu corrompu ou tronqué ({expect} : {exc}) ; "
                            f"rien n'a été mis en cache, relancez le téléchargement", url=url,
                            status=200) from None


def _check_7z(path: Path, head: bytes) -> None:
    import py7zr

    if not head.startswith(_SEVEN_ZIP_MAGIC):
        raise ValueError("ce n'est pas une archive 7z")
    try:
        with py7zr.SevenZipFile(path) as archive:
            bad = archive.testzip()
    except (py7zr.exceptions.Bad7zFile, py7zr.exceptions.ArchiveError) as exc:
        raise ValueError(str(exc) or type(exc).__name__) from None
    if bad is not None:
        raise ValueError(f"contrôle d'intégrité en échec pour {bad}")


def sha256_of(path: Path) -> str:
    """Return the SHA-256 of a file, in hexadecimal."""
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()
