"""The error of the weights side, and what a failed request answered, in a few words."""

from __future__ import annotations

import errno
import http.client
import socket
import ssl
import urllib.error
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

__all__ = ["Attempt", "PretrainedLoadError", "describe_failure"]


@dataclass(frozen=True)
class Attempt:
    """One place `from_pretrained` looked for weights and what it answered."""

    #: The place: `Hugging Face Hub t2t-vit/t2t-vit-7.official (revision main)`, a URL, ...
    where: str
    #: What it answered: `connection refused`, `HTTP 404 (repository not found)`, ...
    answer: str

    def __str__(self) -> str:
        return f"{self.where}: {self.answer}"


class PretrainedLoadError(OSError):
    """Pretrained weights could not be found, downloaded or read.

    `attempts` lists each place tried and what it answered, in order. When weights do not
    fit their architecture, `mismatch` is the `StateDictMismatchError` with the full lists of
    missing, unexpected and mis-shaped keys.
    """

    def __init__(
        self, message: str, attempts: Sequence[Attempt] = (), *, mismatch: Exception | None = None
    ) -> None:
        """The error of a failed load.

        Args:
            message: What went wrong, each place tried and what to do.
            attempts: The places tried and their answers, in order.
            mismatch: The `StateDictMismatchError` when the weights do not fit.
        """
        super().__init__(message)
        self.attempts: list[Attempt] = list(attempts)
        self.mismatch = mismatch

    def __str__(self) -> str:
        return str(self.args[0])


def _chain(err: BaseException) -> Iterator[BaseException]:
    """`err`, then its causes and contexts, each once."""
    seen: set[int] = set()
    todo: list[BaseException] = [err]
    while todo:
        e = todo.pop(0)
        if id(e) in seen:
            continue
        seen.add(id(e))
        yield e
        if isinstance(e, urllib.error.URLError) and isinstance(e.reason, BaseException):
            todo.append(e.reason)
        todo += [c for c in (e.__cause__, e.__context__) if c is not None]


def _status(err: BaseException) -> tuple[int, str] | None:
    if isinstance(err, urllib.error.HTTPError):
        return err.code, str(err.reason or "")
    # huggingface_hub's HfHubHTTPError (and requests'/httpx's errors) carry the response.
    response = getattr(err, "response", None)
    code = getattr(response, "status_code", None)
    if isinstance(code, int):
        # httpx names it reason_phrase, requests (huggingface_hub < 1.0) reason.
        reason = getattr(response, "reason_phrase", None) or getattr(response, "reason", None)
        return code, str(reason or "")
    return None


_DNS = ("name or service not known", "nodename nor servname", "getaddrinfo failed",
        "temporary failure in name resolution", "no address associated")  # fmt: skip


#: Errors of the local disk, not of the network.
_LOCAL = {errno.ENOSPC, errno.EACCES, errno.EROFS, errno.ENOTDIR, errno.EISDIR, errno.EDQUOT}


def local_error(err: BaseException) -> OSError | None:
    """The error of the local disk (full, read-only, no permission, ...) in `err`'s chain."""
    return next((e for e in _chain(err) if isinstance(e, OSError) and e.errno in _LOCAL), None)


def describe_failure(
    err: BaseException, *, timeout: float | None = None, file: str | None = None
) -> str:
    """A few words on what a failed request met: `connection refused`, `timed out after 5 s`,
    `HTTP 404 (repository not found)`, `server error (HTTP 503)`, `offline mode is on`, ...
    `file` names the file a Hub request asked for, for a file-not-found answer.

    Reads the whole exception chain, so it works on huggingface_hub's, httpx's, requests'
    and urllib's errors alike.
    """
    chain = list(_chain(err))
    names = {type(e).__name__ for e in chain}
    text = " ".join(str(e) for e in chain).lower()
    if "OfflineModeIsEnabled" in names:
        return "offline mode is on (HF_HUB_OFFLINE=1)"
    for e in chain:
        status = _status(e)
        if status is None:
            continue
        code, reason = status
        if code >= 500:
            return f"server error (HTTP {code}{' ' + reason if reason else ''})"
        missing = f"no {file} in the repository" if file else "file not found in the repository"
        what = {
            "GatedRepoError": "gated repository: accept its conditions on the Hub and log in",
            "RepositoryNotFoundError": "repository not found, or private",
            "RevisionNotFoundError": "revision not found",
            "RemoteEntryNotFoundError": missing,
            "EntryNotFoundError": missing,
        }
        detail = next((what[type(c).__name__] for c in chain if type(c).__name__ in what), reason)
        return f"HTTP {code}{f' ({detail})' if detail else ''}"
    if any(isinstance(e, socket.gaierror) for e in chain) or any(d in text for d in _DNS):
        return "host not found (DNS lookup failed)"
    if any(isinstance(e, ConnectionRefusedError) for e in chain) or "refused" in text:
        return "connection refused"
    if any(isinstance(e, TimeoutError) for e in chain) or any("Timeout" in n for n in names):
        return f"timed out after {timeout:g} s" if timeout is not None else "timed out"
    if any(isinstance(e, ConnectionResetError) for e in chain) or "reset by peer" in text:
        return "connection reset by the server"
    closed = (http.client.IncompleteRead, http.client.RemoteDisconnected)
    if any(isinstance(e, closed) for e in chain) or "RemoteProtocolError" in names:
        return "the server closed the connection before the answer was complete"
    local = local_error(err)
    if local is not None:
        return f"cannot write {local.filename or 'a file'} ({local.strerror})"
    not_found = next((e for e in chain if isinstance(e, FileNotFoundError)), None)
    if not_found is not None:  # a file:// URL
        return f"file not found ({not_found.filename or not_found})"
    if any(isinstance(e, ssl.SSLError) for e in chain):
        tls = next(e for e in chain if isinstance(e, ssl.SSLError))
        return f"TLS error ({tls})"
    if any("ProxyError" in n for n in names):
        return f"proxy error ({err})"
    return f"{type(err).__name__}: {err}"[:300]
