"""Run directories that survive kills, full disks and mistakes: one writer at a time, files that
are whole or absent, and append-only records whose torn last line is dropped and redone.

* **One writer.** :func:`lock_run_dir` takes an advisory lock (``flock``) on ``DIR/.lock`` and
  writes the holder's pid, host, command and start time into it. A second process gets
  :class:`RunDirBusy` naming that holder. The kernel releases the lock when its process dies
  (``kill -9`` too), so a stale lock never blocks a rerun. A process may take the lock of a
  directory again (nested calls); :func:`writer_scope` releases what was taken inside it.
* **Whole files.** :func:`write_atomic` / :func:`write_json` / :func:`atomic_path` write to a
  temporary file in the same directory (``.NAME.PID.tmp...``), flush it to disk and rename it
  into place: a reader sees the old file or the new one, never a part. Temporaries left by a
  killed writer are removed by the next one that takes the lock.
* **Append-only records.** :func:`append_lines` writes a group of JSONL lines (one problem) in one
  call; :func:`read_jsonl_whole` reads only whole lines (a line counts once it ends with a newline
  and parses), so a line torn by a kill is dropped (and the caller redoes its problem).
* **A full disk.** :func:`is_disk_full` recognises ``ENOSPC`` (also inside the messages of
  libraries that hide the errno); the commands stop with one clear line and the directory stays
  resumable, because nothing above is ever written in place.

``MRT_SLOW_WRITES=SECONDS`` (a setting for the soak benchmark and tests, not for users) splits
every write made here in two with a pause between, so that a kill at a random moment often lands
inside a write.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import logging
import os
import socket
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)
LOCK_NAME = ".lock"
TMP_MARK = ".tmp"


class RunDirBusy(RuntimeError):
    """Another live process writes this run directory."""


# ---------------------------------------------------------------------------- one writer


@dataclass
class _Held:
    fd: int
    depth: int


_HELD: dict[str, _Held] = {}
_GUARD = threading.RLock()
_SCOPES: list[list[str]] = []


def _holder_text(raw: bytes) -> str:
    try:
        h = json.loads(raw.decode() or "{}")
    except (ValueError, UnicodeDecodeError):
        h = {}
    if not h.get("pid"):
        return "pid unknown"
    pid = int(h["pid"])
    alive = True
    if h.get("host", socket.gethostname()) == socket.gethostname():
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            alive = False
        except PermissionError:
            pass
    text = f"pid {pid} on {h.get('host', '?')}, started {h.get('started', '?')}: {h.get('command', '?')}"
    if not alive:
        text += (
            f"; pid {pid} has ended, so a process it started (an engine or worker) still holds the lock: "
            "it ends by itself, or end it"
        )
    return text


def lock_run_dir(out) -> Path:
    """Take the writer's lock of run directory ``out`` (created if needed) for this process.

    Raises :class:`RunDirBusy` naming the holder if another process has it. Taking it again in
    the same process nests (the innermost :func:`writer_scope` or :func:`release_run_dir` gives it
    back). Leftover temporary files of killed writers are removed once the lock is held."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    key = os.path.realpath(out)
    with _GUARD:
        held = _HELD.get(key)
        if held is not None:
            held.depth += 1
        else:
            fd = os.open(os.path.join(key, LOCK_NAME), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as e:
                raw = os.pread(fd, 4096, 0) if e.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES) else None
                os.close(fd)
                if raw is None:
                    raise
                raise RunDirBusy(
                    f"{out} is being written by another process ({_holder_text(raw)}); "
                    "wait for it to end, or write to another --out"
                ) from None
            me = {
                "pid": os.getpid(),
                "host": socket.gethostname(),
                "started": time.strftime("%Y-%m-%d %H:%M:%S"),
                "command": " ".join(sys.argv)[:500],
            }
            os.ftruncate(fd, 0)
            os.pwrite(fd, json.dumps(me).encode(), 0)
            _HELD[key] = _Held(fd, 1)
            _remove_temporaries(Path(key))
        if _SCOPES:
            _SCOPES[-1].append(key)
    return out


def release_run_dir(out) -> None:
    """Give back one hold of ``out``'s lock taken by this process (the last one unlocks)."""
    key = os.path.realpath(out)
    with _GUARD:
        for scope in reversed(_SCOPES):
            if key in scope:
                del scope[len(scope) - 1 - scope[::-1].index(key)]
                break
        _release(key)


def _release(key: str) -> None:
    with _GUARD:
        held = _HELD.get(key)
        if held is None:
            return
        held.depth -= 1
        if held.depth <= 0:
            del _HELD[key]
            os.close(held.fd)  # closing the descriptor drops the flock


def holds_run_dir(out) -> bool:
    return os.path.realpath(out) in _HELD


@contextlib.contextmanager
def writer_scope():
    """Locks taken by :func:`lock_run_dir` (or :func:`mrt.config.claim_run_dir`) inside the block
    are released when it ends, also by an exception; without a scope a lock lasts as long as the
    process."""
    with _GUARD:
        _SCOPES.append([])
    try:
        yield
    finally:
        with _GUARD:
            keys = _SCOPES.pop()
        for key in reversed(keys):
            _release(key)


def one_writer(fn):
    """Decorator: ``fn`` runs in a :func:`writer_scope`."""
    import functools

    @functools.wraps(fn)
    def wrapped(*a, **kw):
        with writer_scope():
            return fn(*a, **kw)

    return wrapped


def _remove_temporaries(out: Path) -> None:
    gone = []
    for d in (out, out / "plots"):
        if d.is_dir():
            for p in d.glob(f".*{TMP_MARK}*"):
                if p.is_file():
                    with contextlib.suppress(OSError):
                        p.unlink()
                        gone.append(p.name)
    if gone:
        log.warning("%s: removed %d temporary file(s) left by a killed writer: %s", out, len(gone), ", ".join(gone))


# ---------------------------------------------------------------------------- whole files


def _slow_writes() -> float:
    try:
        return float(os.environ.get("MRT_SLOW_WRITES", "0") or 0)
    except ValueError:
        return 0.0


def _write_all(f, data) -> None:
    """One write of ``data`` (str or bytes) to ``f``, flushed; split in two under MRT_SLOW_WRITES.
    A failed write names the file."""
    pause = _slow_writes()
    try:
        if pause > 0 and len(data) > 1:
            half = len(data) // 2
            f.write(data[:half])
            f.flush()
            time.sleep(pause)
            f.write(data[half:])
        else:
            f.write(data)
        f.flush()
    except OSError as e:
        if e.filename is None and e.errno is not None:
            raise OSError(e.errno, e.strerror, getattr(f, "name", None)) from e
        raise


def temp_name(path: Path) -> Path:
    """The temporary sibling of ``path`` (same directory, same suffix, marked as temporary)."""
    return path.with_name(f".{path.stem}.{os.getpid()}{TMP_MARK}{path.suffix}")


@contextlib.contextmanager
def atomic_path(path):
    """Yield a temporary path next to ``path``; when the block ends without an error, the file
    written there replaces ``path`` in one rename (else it is removed). For writers that take a
    file name (``savefig``, ``torch.save``)."""
    path = Path(path)
    tmp = temp_name(path)
    try:
        yield tmp
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as e:
        # torch.save and others report a full disk as "file write failed": look before the
        # temporary is removed (which frees its space)
        full = isinstance(e, Exception) and not is_disk_full(e) and _nearly_full(path.parent)
        with contextlib.suppress(OSError):
            tmp.unlink()
        if full:
            raise OSError(errno.ENOSPC, "No space left on device", str(path)) from e
        raise


def _nearly_full(d: Path) -> bool:
    try:
        st = os.statvfs(d)
    except OSError:
        return False
    return st.f_bavail * st.f_frsize < 1 << 20


WEIGHT_FILES = (
    "model.safetensors",
    "model.safetensors.index.json",
    "pytorch_model.bin",
    "pytorch_model.bin.index.json",
)


def has_weights(directory) -> bool:
    """A saved model directory counts as finished only when its weights are there, not when its
    ``config.json`` is (``save_pretrained`` writes the config first: a kill between the two left
    a directory that looked finished and failed to load)."""
    d = Path(directory)
    return (d / "config.json").is_file() and any((d / f).is_file() for f in WEIGHT_FILES)


@contextlib.contextmanager
def atomic_dir(path, tmp_name: str = ""):
    """Yield a temporary directory next to ``path``; when the block ends without an error it
    replaces ``path`` (an old one is moved aside, then removed), else it is removed. A kill leaves
    ``path`` whole, or absent, never half written. ``tmp_name``: a fixed temporary name, for
    writers in several processes that must agree on it (default: one per process)."""
    import shutil

    path = Path(path)
    tmp = path.with_name(tmp_name or f".{path.name}.tmp-{os.getpid()}")
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    publish_dir(tmp, path)


def move_in(src, dest, last: tuple[str, ...] = ()) -> None:
    """Move every file of the directory ``src`` into ``dest`` (each one a rename: whole), the
    names in ``last`` after the others; then remove ``src``. For a directory that cannot be
    replaced whole (it holds a run's lock)."""
    src, dest = Path(src), Path(dest)
    files = sorted(src.iterdir(), key=lambda f: (f.name in last, f.name))
    for f in files:
        os.replace(f, dest / f.name)
    src.rmdir()


def publish_dir(tmp, path) -> None:
    """Put the finished directory ``tmp`` in place of ``path`` (see :func:`atomic_dir`)."""
    import shutil

    tmp, path = Path(tmp), Path(path)
    old = None
    if path.exists():
        old = path.with_name(f".{path.name}.old-{os.getpid()}")
        if old.exists():
            shutil.rmtree(old)
        os.replace(path, old)
    os.replace(tmp, path)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def write_atomic(path, data: str | bytes) -> Path:
    """Write ``data`` to ``path`` whole or not at all (temporary file, fsync, rename)."""
    path = Path(path)
    raw = data.encode() if isinstance(data, str) else data
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        _write_all(f, raw)
    return path


def write_json(path, obj, indent: int | None = 1) -> Path:
    return write_atomic(path, json.dumps(obj, indent=indent))


def update_json(path, update) -> dict:
    """Read-modify-write of a JSON file shared by several processes: under an exclusive lock on
    ``PATH.lock`` (waited for), ``update(current)`` returns the new object (``current``: ``{}`` for
    a missing file), which is written whole (temporary file, rename). Returns the object written."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_name(path.name + ".lock"), "a") as lock:
        fcntl.flock(lock.fileno(), fcntl.LOCK_EX)
        try:
            current = json.loads(path.read_text()) if path.is_file() else {}
            new = update(current)
            write_json(path, new)
            return new
        finally:
            fcntl.flock(lock.fileno(), fcntl.LOCK_UN)


def kill_point(where: str, count: int) -> None:
    """A test hook, not a user setting (like ``MRT_FAULTS``): with ``MRT_KILL_AT="WHERE:N"`` in the
    environment the process kills itself with SIGKILL, as a crash or the OOM killer would, the
    N-th time it reaches ``WHERE`` (``checkpoint``: checkpoint N of a training run is whole;
    ``problem``: a run loop has appended its N-th problem); ``WHERE:N@R`` only in the process of
    rank ``R`` of a launch (``RANK``). Kill-and-resume tests kill at a deterministic point with it,
    so they cannot pass without killing."""
    spec = os.environ.get("MRT_KILL_AT", "")
    point, _, rank = spec.partition("@")
    if spec and point == f"{where}:{count}" and (not rank or rank == os.environ.get("RANK", "0")):
        import signal

        log.warning("MRT_KILL_AT=%s: killing this process (a test's fault injection)", spec)
        for h in logging.getLogger().handlers:
            h.flush()
        os.kill(os.getpid(), signal.SIGKILL)


# ---------------------------------------------------------------------------- append-only records


def append_lines(f, rows: list[dict]) -> None:
    """Append ``rows`` as JSON lines to the open file ``f`` in one write, flushed: a kill leaves
    the group whole, absent, or with a torn last line (which :func:`read_jsonl_whole` drops)."""
    _write_all(f, "".join(json.dumps(r) + "\n" for r in rows))


def read_jsonl_whole(path) -> tuple[list[tuple[int, dict]], list[int]]:
    """``([(line number, object)], [numbers of the lines dropped])`` of a JSONL file: a line is
    kept when it ends with a newline and holds a JSON object; a torn last line (no newline: a
    write cut by a kill or a full disk) or a malformed line is dropped. A missing file, or one that
    is not a regular file (a device), is empty."""
    p = Path(path)
    if not p.is_file():
        return [], []
    text = p.read_bytes().decode("utf-8", errors="replace")
    lines = text.split("\n")
    rows, bad = [], []
    for n, line in enumerate(lines, 1):
        if n == len(lines):  # after the last newline: empty, or a torn line
            if line.strip():
                bad.append(n)
            break
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError:
            bad.append(n)
            continue
        if isinstance(obj, dict):
            rows.append((n, obj))
        else:
            bad.append(n)
    return rows, bad


# ---------------------------------------------------------------------------- a full disk


def is_disk_full(e: BaseException) -> bool:
    """``ENOSPC`` (or ``EDQUOT``), also when a library (safetensors, torch) reports it as text."""
    if isinstance(e, OSError) and e.errno in (errno.ENOSPC, errno.EDQUOT):
        return True
    text = str(e)
    return "No space left on device" in text or "Disk quota exceeded" in text or "os error 28" in text
