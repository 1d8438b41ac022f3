"""Reads the scalars of TensorBoard event files, for the tracker tests."""

import struct


def tensorboard_scalars(path) -> dict[str, list[tuple[int, float]]]:
    """The scalars of TensorBoard event files under ``path`` (TFRecord framing: length, crc, event, crc)."""
    from tensorboardX.proto import event_pb2

    out: dict[str, list[tuple[int, float]]] = {}
    for file in sorted(path.rglob("events.out.tfevents.*")):
        data, at = file.read_bytes(), 0
        while at < len(data):
            (length,) = struct.unpack("<Q", data[at : at + 8])
            event = event_pb2.Event.FromString(data[at + 12 : at + 12 + length])
            at += 12 + length + 4
            for value in event.summary.value:
                if value.HasField("simple_value"):
                    out.setdefault(value.tag, []).append((event.step, value.simple_value))
    return out
