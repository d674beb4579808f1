"""rosbag2 reading (MCAP and sqlite3) and writing (MCAP) through rosbags; imports no rclpy.

Messages read here are rosbags dataclasses built from the bag's own embedded type
definitions, so :mod:`mf_ros.conversions` decodes them like rclpy messages.
"""

from __future__ import annotations

import os
import struct
import zlib
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from types import MappingProxyType, TracebackType
from typing import Any, Literal, NamedTuple

from rosbags.highlevel import AnyReader, AnyReaderError
from rosbags.interfaces import Connection, Qos, QosDurability, QosHistory, QosLiveliness, QosReliability, QosTime
from rosbags.rosbag2 import ReaderError, StoragePlugin, Writer, WriterError
from rosbags.rosbag2.storage_mcap import McapWriter
from rosbags.serde import SerdeError
from rosbags.typesys import Stores, TypesysError, get_typestore

from mf_core.errors import InputError
from mf_core.files import remove_tree
from mf_ros.conversions import rosbags_messages
from mf_ros.topics import TF_STATIC_TOPIC

# What rosbags, the MCAP / sqlite3 layers and the CDR decoder raise for a truncated, corrupt or
# foreign file (measured: AnyReaderError "File end magic is invalid", UnicodeDecodeError, ...).
_READ_ERRORS = (AnyReaderError, ReaderError, SerdeError, OSError, EOFError, KeyError, ValueError, struct.error)
STORAGE_PLUGINS = {"mcap": StoragePlugin.MCAP, "sqlite3": StoragePlugin.SQLITE3}
# Byte offset of a chunk record's uncompressed_crc: opcode (1) + record length (8) + message start,
# message end and uncompressed size (3 x 8), per the MCAP specification.
CHUNK_CRC_OFFSET = 1 + 8 + 24


class _CheckedMcapWriter(McapWriter):
    """rosbags' MCAP storage writer, plus what it leaves out: each chunk's CRC-32 (it writes 0, "not
    computed", so readers cannot tell a corrupted chunk from a good one) and a flush of every completed
    chunk (so after a kill -9 or power loss the file holds every chunk but the one being filled).

    rosbags has no option for either; the CRC is patched into the chunk record it has just written.
    :meth:`sync` ends a chunk early, for writers (the recorder) that must lose nothing they accepted.
    """

    def close_chunk(self) -> None:
        content = self.chunk.bio.getvalue()  # the chunk's uncompressed records
        start = self.bio.tell()
        super().close_chunk()
        end = self.bio.tell()
        self.bio.seek(start + CHUNK_CRC_OFFSET)
        self.bio.write(struct.pack("<I", zlib.crc32(content)))
        self.bio.seek(end)
        self.bio.flush()

    def sync(self) -> None:
        """Close the chunk being filled (if any) and fsync: everything written so far survives a power loss."""
        if self.chunk.msgs:
            self.close_chunk()
        os.fsync(self.bio.fileno())


class _Writer(Writer):
    """rosbags' rosbag2 writer with :class:`_CheckedMcapWriter` for MCAP storage."""

    STORAGE_PLUGINS = MappingProxyType({**Writer.STORAGE_PLUGINS, StoragePlugin.MCAP: _CheckedMcapWriter})
STATIC_TOPICS = (TF_STATIC_TOPIC,)


class BagMessage(NamedTuple):
    """One message: topic, ROS type name, log time (ns), the rosbags message and its CDR bytes.

    ``msg`` is None for topics that :func:`read_messages` was told not to decode.
    """

    topic: str
    msgtype: str
    stamp_ns: int
    msg: Any
    raw: bytes


class BagTopic(NamedTuple):
    """One topic of a bag with its message type and message count."""

    topic: str
    msgtype: str
    count: int


ROS1_SUFFIX = ".bag"  # a ROS 1 bag: read through rosbags like a rosbag2 one, but its messages are not CDR


def ros1_conversion(path: str | Path) -> str:
    """The command that converts ROS 1 bag ``path`` into a ROS 2 Jazzy MCAP bag (rosbags' own converter,
    installed with this package; ``--dst-typestore`` maps the ROS 1 messages to their ROS 2 form)."""
    path = Path(path)
    return (f"rosbags-convert --src {path} --dst {path.with_suffix('')}_ros2 --dst-storage mcap "
            "--dst-typestore ros2_jazzy")


def _bad_bag(path: Path, err: BaseException) -> InputError:
    return InputError(f"cannot read bag {path}: {type(err).__name__}: {err}. Pass a rosbag2 directory "
                      "(with metadata.yaml), a .mcap/.db3 file or a ROS 1 .bag; if it was cut short (recorder killed, "
                      "copy interrupted), re-record it, or salvage an MCAP with `mcap recover` of the "
                      "separate mcap CLI (https://mcap.dev, not installed by this package)")


@contextmanager
def _opened_reader(path: Path) -> Iterator[AnyReader]:
    """An open AnyReader for ``path``; errors while opening it become InputError.

    Only the reader's own calls are mapped (here and in :func:`_read`): an exception from the
    caller's code inside the ``with`` block stays what it is, so our bugs are not reported as
    damaged bags.
    """
    if not path.exists():
        raise InputError(f"bag {path} does not exist; pass a rosbag2 directory, a .mcap/.db3 file or a ROS 1 .bag")
    try:
        reader = AnyReader([path], default_typestore=rosbags_messages().typestore)
        reader.open()
    except _READ_ERRORS as err:
        raise _bad_bag(path, err) from err
    try:
        yield reader
    finally:
        reader.close()


def _read(path: Path, call, *args):
    """``call(*args)`` of the bag reader, its read errors as InputError naming the bag."""
    try:
        return call(*args)
    except _READ_ERRORS as err:
        raise _bad_bag(path, err) from err


def read_messages(path: str | Path, topics: Iterable[str] | None = None,
                  decode: bool | Iterable[str] = True) -> Iterator[BagMessage]:
    """Yield the messages of a bag (directory, .mcap or .db3) in log-time order.

    ``topics`` limits the topics read; a topic that is not in the bag raises InputError.
    ``decode`` says which messages are deserialised: all (True), none (False) or the named
    topics; the others come as CDR bytes only (copying a bag needs no decoding).
    Corrupt or truncated files raise InputError naming the file, also mid-iteration.
    """
    path = Path(path)
    with _opened_reader(path) as reader:
        connections = reader.connections
        if topics is not None:
            wanted = set(topics)
            missing = sorted(wanted - {c.topic for c in connections})
            if missing:
                raise InputError(f"bag {path} has no topic(s) {missing}; it has "
                                 f"{sorted({c.topic for c in connections})}")
            connections = [c for c in connections if c.topic in wanted]
        decoded = {c.topic for c in connections} if decode is True else set(decode or ())
        messages = _read(path, reader.messages, connections)
        while (item := _read(path, next, messages, None)) is not None:
            connection, stamp_ns, raw = item
            msg = _read(path, reader.deserialize, raw, connection.msgtype) if connection.topic in decoded else None
            yield BagMessage(connection.topic, connection.msgtype, stamp_ns, msg, raw)


def bag_topics(path: str | Path) -> list[BagTopic]:
    """Topics of a bag with their message type and count, sorted by topic name."""
    path = Path(path)
    with _opened_reader(path) as reader:
        return sorted(BagTopic(name, info.msgtype or "", info.msgcount) for name, info in reader.topics.items())


def bag_message_types(path: str | Path) -> dict[str, Any]:
    """The message types a bag defines beyond the ROS 2 Jazzy typestore (a vendor's LiDAR or GNSS messages),
    parsed from the definitions the bag records, as rosbags field definitions (name -> definition) for
    :meth:`BagWriter.register_types`; empty when every type is a Jazzy one."""
    path = Path(path)
    known = rosbags_messages().typestore.fielddefs
    with _opened_reader(path) as reader:  # AnyReader registers the bag's own definitions in its typestore
        return {name: definition for name, definition in reader.typestore.fielddefs.items() if name not in known}


def bag_time_range(path: str | Path) -> tuple[int, int]:
    """(first, last) message log time of a bag in nanoseconds; an empty bag raises InputError."""
    path = Path(path)
    with _opened_reader(path) as reader:
        if reader.message_count == 0:
            raise InputError(f"bag {path} has no messages")
        # rosbags reports end_time one nanosecond after the last message.
        return reader.start_time, reader.end_time - 1


def offered_qos(topic: str) -> Qos:
    """QoS recorded as the offered profile: what `ros2 bag play` republishes with.

    Reliable matches both reliable and best-effort subscribers; /tf_static is also
    transient-local (latched) with depth 1, as tf2 expects.
    """
    static = topic in STATIC_TOPICS
    never = QosTime(0, 0)  # 0 = rmw default (no deadline / lifespan / lease)
    return Qos(QosHistory.KEEP_LAST, 1 if static else 10, QosReliability.RELIABLE,
               QosDurability.TRANSIENT_LOCAL if static else QosDurability.VOLATILE,
               never, never, QosLiveliness.AUTOMATIC, never, False)


class BagWriter:
    """Context manager writing a rosbag2 bag (version 9; MCAP by default) with the ROS 2 Jazzy typestore.

    >>> with BagWriter("out_bag") as bag:
    ...     bag.write("/camera/image", image_msg, stamp_ns)
    """

    def __init__(self, path: str | Path, overwrite: bool = False,
                 storage: Literal["mcap", "sqlite3"] = "mcap") -> None:
        self.path = Path(path)
        if storage not in STORAGE_PLUGINS:
            raise InputError(f"bag storage {storage!r} is not supported; use one of {sorted(STORAGE_PLUGINS)}")
        self.storage = storage
        self.overwrite = overwrite
        self.typestore = get_typestore(Stores.ROS2_JAZZY)  # its own: register_types leaves the shared one as it is
        self._writer: Writer | None = None
        self._connections: dict[str, Connection] = {}

    def __enter__(self) -> BagWriter:
        self._remove_existing()
        writer = _Writer(self.path, version=9, storage_plugin=STORAGE_PLUGINS[self.storage])
        try:
            writer.open()
        except (OSError, WriterError) as err:
            raise InputError(f"cannot create bag {self.path}: {err}; choose a writable directory") from err
        self._writer = writer
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        writer, self._writer = self._writer, None
        if writer is not None:
            writer.close()

    def _remove_existing(self) -> None:
        if not self.path.exists():
            return
        if not self.overwrite:
            raise InputError(f"bag {self.path} already exists; choose another path or pass overwrite=True")
        if not self.path.is_dir() or not (self.path / "metadata.yaml").exists():
            raise InputError(f"{self.path} exists and is not a rosbag2 directory; refusing to delete it")
        remove_tree(self.path, inside=self.path.parent)

    def sync(self) -> None:
        """Make every message written so far durable (MCAP: end the chunk and fsync); sqlite3: nothing to do."""
        storage = self._open_writer().storage
        if isinstance(storage, _CheckedMcapWriter):
            storage.sync()

    def _open_writer(self) -> Writer:
        if self._writer is None:
            raise InputError(f"bag {self.path} is not open; use BagWriter as a context manager (with ...)")
        return self._writer

    def register_types(self, types: dict[str, Any]) -> None:
        """Make message types beyond ROS 2 Jazzy writable, e.g. :func:`bag_message_types` of the bag being copied."""
        try:
            self.typestore.register(types)
        except TypesysError as err:
            raise InputError(f"cannot add message types {sorted(types)} to bag {self.path}: {err}") from err

    def add_topic(self, topic: str, msgtype: str) -> None:
        """Declare ``topic`` with ROS type ``msgtype`` (e.g. ``sensor_msgs/msg/Image``); must precede its writes."""
        writer = self._open_writer()
        if topic in self._connections:
            raise InputError(f"topic {topic} was already added to bag {self.path}")
        if msgtype not in self.typestore.types:
            raise InputError(f"message type {msgtype!r} is unknown to the ROS 2 Jazzy typestore; check the spelling "
                             "(package/msg/Name), or register its definition first (register_types)")
        self._connections[topic] = writer.add_connection(topic, msgtype, typestore=self.typestore,
                                                         offered_qos_profiles=[offered_qos(topic)])

    def _connection(self, topic: str) -> Connection:
        if topic not in self._connections:
            raise InputError(f"topic {topic} was not added to bag {self.path}; call add_topic(topic, msgtype) first")
        return self._connections[topic]

    def write(self, topic: str, msg: Any, stamp_ns: int) -> None:
        """Serialise a rosbags message to CDR and write it at log time ``stamp_ns``.

        The topic is added on first use with the message's own type.
        """
        if not hasattr(msg, "__msgtype__"):
            raise InputError(f"write() takes rosbags messages, got {type(msg).__name__}; for an rclpy message "
                             "use write_raw(topic, rclpy.serialization.serialize_message(msg), stamp_ns)")
        if topic not in self._connections:
            self.add_topic(topic, msg.__msgtype__)
        connection = self._connection(topic)
        if msg.__msgtype__ != connection.msgtype:
            raise InputError(f"topic {topic} holds {connection.msgtype}, got a {msg.__msgtype__}")
        self.write_raw(topic, self.typestore.serialize_cdr(msg, connection.msgtype), stamp_ns)

    def write_raw(self, topic: str, cdr: bytes | memoryview, stamp_ns: int, msgtype: str | None = None) -> None:
        """Write already serialised CDR bytes (e.g. from an rclpy ``raw=True`` subscription).

        With ``msgtype`` the topic is added on first use; without it, add_topic must come first.
        """
        if msgtype is not None and topic not in self._connections:
            self.add_topic(topic, msgtype)
        connection = self._connection(topic)
        if stamp_ns < 0:
            raise InputError(f"log time must be >= 0 ns, got {stamp_ns}")
        self._open_writer().write(connection, int(stamp_ns), cdr)
