"""Recover a bag whose writer never closed it (kill -9, power loss, full disk): ``mf bag recover``.

Such an MCAP file has no summary and its bag directory no metadata.yaml, so rosbags (and
with it ``mf inspect`` / ``mf export``) reads nothing although the file holds every completed
chunk. Here the file is read record by record with the ``mcap`` library's stream reader;
every chunk whose CRC-32 checks out (or that carries none, as older writers leave it) gives
its messages; a chunk that fails its CRC is reported and skipped, not trusted; reading stops
at the cut-off tail. The messages are written, raw, into a new closed bag at ``out``.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from mcap.exceptions import McapError
from mcap.records import Channel, Chunk, Message, Schema
from mcap.stream_reader import StreamReader, breakup_chunk

from mf_core.errors import InputError
from mf_core.files import remove_tree
from mf_ros.bags import BagWriter


@dataclass
class Recovery:
    """What a recovery found: messages per topic, chunks skipped as corrupted, where reading ended."""

    out: Path
    messages: Counter[str] = field(default_factory=Counter)
    corrupted_chunks: list[int] = field(default_factory=list)  # byte offsets of chunks that failed their CRC
    ended: str = "the file ends cleanly"

    def summary(self) -> str:
        """One paragraph for the terminal."""
        topics = ", ".join(f"{t} {n}" for t, n in sorted(self.messages.items())) or "none"
        text = f"recovered {sum(self.messages.values())} messages into {self.out} ({topics}); {self.ended}"
        if self.corrupted_chunks:
            text += (f"; {len(self.corrupted_chunks)} corrupted chunk(s) skipped (CRC mismatch at byte offsets "
                     f"{self.corrupted_chunks})")
        return text


def _mcap_files(source: Path) -> list[Path]:
    if source.is_file():
        return [source]
    files = sorted(source.glob("*.mcap")) if source.is_dir() else []
    if not files:
        raise InputError(f"{source} is neither an .mcap file nor a bag directory holding one")
    return files


def recover(source: str | Path, out: str | Path, overwrite: bool = False) -> Recovery:
    """Copy every intact message of the MCAP file(s) at ``source`` into a new bag at ``out``."""
    source, out = Path(source), Path(out)
    files = _mcap_files(source)
    if out.resolve() == source.resolve() or source.resolve() in out.resolve().parents:
        raise InputError(f"--out {out} must be outside {source}; the damaged bag is left untouched")
    result = Recovery(out)
    with BagWriter(out, overwrite=overwrite) as bag:
        for path in files:
            _copy_file(path, bag, result)
    if not result.messages:
        remove_tree(out, inside=out.parent)  # the empty bag this call created
        raise InputError(f"no complete message in {source} ({result.ended}); nothing written")
    return result


def _copy_file(path: Path, bag: BagWriter, result: Recovery) -> None:
    schemas: dict[int, Schema] = {}
    channels: dict[int, Channel] = {}
    added: set[str] = set()

    def take(record) -> None:
        if isinstance(record, Schema):
            schemas[record.id] = record
        elif isinstance(record, Channel):
            channels[record.id] = record
        elif isinstance(record, Message) and record.channel_id in channels:
            channel = channels[record.channel_id]
            if channel.topic not in added:
                bag.add_topic(channel.topic, schemas[channel.schema_id].name)
                added.add(channel.topic)
            bag.write_raw(channel.topic, record.data, record.log_time)
            result.messages[channel.topic] += 1

    with open(path, "rb") as f:
        reader = StreamReader(f, emit_chunks=True)
        offset = 0
        try:
            for record in reader.records:
                if isinstance(record, Chunk):
                    try:
                        inner = breakup_chunk(record, validate_crc=True)
                    except (McapError, ValueError, EOFError):  # CRCValidationError is a ValueError
                        result.corrupted_chunks.append(offset)
                        inner = []
                    for part in inner:
                        take(part)
                else:
                    take(record)
                offset = f.tell()
        except (McapError, EOFError, ValueError, OSError) as err:
            result.ended = f"{path.name} is cut off after byte {offset} ({type(err).__name__}): the rest is lost"
