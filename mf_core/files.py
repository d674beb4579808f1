"""Files safely: names from data as file names, atomic writes, confined deletes, image sizes from headers.

Every file the package writes goes through here: a name that comes from data (a camera, a scene,
a sample) becomes part of a path only after :func:`safe_file_name` accepted it; files are written
through a temp file created exclusively in the destination folder (never a fixed name that a
planted symlink could redirect) and ``os.replace``; a tree is deleted only when it lies inside the
folder the caller owns and is not a symlink. An encoded image's size is read from its header
(:func:`encoded_image_size`) before anything decodes it, so a small file that decodes to gigabytes
is refused first.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import shutil
import tempfile
import warnings
from collections.abc import Iterator
from pathlib import Path

import PIL.Image

from mf_core.errors import InputError

MAX_IMAGE_PIXELS = 40_000_000  # default cap on width x height of an input image (an 8K frame is 33 MP)
MAX_NAME_LENGTH = 200  # bytes are 255 on common file systems; room for suffixes such as "_calib.json"
_UNSAFE = re.compile(r"[/\\\x00-\x1f\x7f]")  # separators and control characters


def safe_file_name(name: str, what: str) -> str:
    """``name`` itself when it is safe as one file name component; InputError naming ``what`` otherwise.

    Refused: empty, ``.``/``..``, a leading dot (hidden, and the project's temp-file prefix), path
    separators, control characters, and more than MAX_NAME_LENGTH characters. Names are refused
    rather than rewritten so two different names can never land on the same file.
    """
    if not isinstance(name, str):
        raise InputError(f"{what} must be a string, got {type(name).__name__}")
    if not name or name.startswith(".") or _UNSAFE.search(name) or len(name) > MAX_NAME_LENGTH:
        raise InputError(f"{what} {name!r} cannot be used as a file name (it must be 1-{MAX_NAME_LENGTH} characters "
                         "without '/', '\\', control characters or a leading '.'); rename it in the data")
    return name


@contextlib.contextmanager
def atomic_path(path: str | Path, durable: bool = True) -> Iterator[Path]:
    """Yield an exclusively created temp file beside ``path`` to write; on success it is fsynced
    (``durable``) and renamed onto ``path`` with ``os.replace``; on error it is removed.

    For writers that take a file name (safetensors' zero-copy ``save_file``); a crash leaves the
    old file (or none), never a partial one.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        os.chmod(tmp, 0o644)  # mkstemp makes owner-only files; outputs are meant to be shared
        yield Path(tmp)
        if durable:
            with open(tmp, "rb") as f:
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def atomic_write(path: str | Path, data: bytes, durable: bool = True) -> None:
    """Write ``data`` to ``path`` through :func:`atomic_path`: a crash leaves the old file (or none).

    ``durable`` fsyncs before the rename (checkpoints, configs); files that can be regenerated
    may skip it.
    """
    with atomic_path(path, durable) as tmp:
        tmp.write_bytes(data)


def remove_tree(path: str | Path, inside: str | Path) -> None:
    """Delete the directory ``path``, which must lie strictly inside ``inside`` and not be a symlink.

    The guard for every ``rmtree``: a path built from data or planted by someone else can never
    make the package delete anything outside the folder it was told to write.
    """
    path, inside = Path(path), Path(inside)
    if path.is_symlink():
        raise InputError(f"{path} is a symlink; refusing to delete through it (remove it yourself)")
    resolved, root = path.resolve(), inside.resolve()
    if resolved == root or root not in resolved.parents:
        raise InputError(f"refusing to delete {path}: it is not inside {inside}")
    shutil.rmtree(resolved)


def temp_dir_beside(path: str | Path) -> Path:
    """A new, exclusively created directory next to ``path`` (same file system, so it can be renamed onto it)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp"))


class ImageTooLarge(InputError):
    """An image whose header says it is larger than the caller allows."""


def encoded_image_size(data: bytes, what: str) -> tuple[int, int]:
    """(width, height) of a PNG/JPEG from its header alone (Pillow reads no pixels; OpenCV cannot do this).

    InputError naming ``what`` when the bytes are no image; ImageTooLarge beyond Pillow's own
    decompression-bomb limit (about 180 MP).
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PIL.Image.DecompressionBombWarning)  # the size is what is checked
        try:
            with PIL.Image.open(io.BytesIO(data)) as header:
                return header.size
        except PIL.Image.DecompressionBombError as err:
            raise ImageTooLarge(f"{what}: its header says {err}") from err
        except (PIL.UnidentifiedImageError, OSError, ValueError) as err:
            raise InputError(f"{what} ({len(data)} bytes) is not a readable JPEG/PNG: {err}") from err


def check_image_size(width: int, height: int, max_pixels: int, what: str) -> None:
    """ImageTooLarge when ``width`` x ``height`` is over ``max_pixels``."""
    if width * height > max_pixels:
        raise ImageTooLarge(f"{what} is {width}x{height}, over the limit of {max_pixels} pixels; raise the "
                            "limit (max_pixels) if this camera is real")
