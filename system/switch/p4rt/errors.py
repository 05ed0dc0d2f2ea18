"""P4Runtime error values and the standard per-update error trailer.

The P4Runtime spec (section "Error reporting") returns a failed Write batch as gRPC status UNKNOWN
with a `grpc-status-details-bin` trailer: a serialized `google.rpc.Status` whose `details` hold one
`p4.v1.Error` per update, in order, OK for the updates that succeeded. grpcio-status needs
protobuf >= 3.21 and p4runtime-shell 0.0.6 pins < 3.21, so the trailer is built by hand here.

p4runtime-shell 0.0.6's error iterator never ends when a detail has an OK code, so a single-update
Write that fails is reported with the update's own code as the top-level status and only its
(non-OK) detail; batches of several updates use UNKNOWN and every detail.
"""

from __future__ import annotations

from collections.abc import Sequence

import grpc
from google.rpc import code_pb2, status_pb2
from p4.v1 import p4runtime_pb2

STATUS_DETAILS_KEY = "grpc-status-details-bin"


class P4RTError(Exception):
    """An error with a canonical code (grpc.StatusCode) and a message for the client."""

    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message

    def __str__(self) -> str:
        return f"{self.code.name}: {self.message}"


def code_number(code: grpc.StatusCode) -> int:
    """The google.rpc.Code number of a grpc.StatusCode."""
    return int(code.value[0])


def code_from_number(number: int) -> grpc.StatusCode:
    for c in grpc.StatusCode:
        if c.value[0] == number:
            return c
    return grpc.StatusCode.UNKNOWN


def code_name(number: int) -> str:
    return code_pb2.Code.Name(number) if number in code_pb2.Code.values() else str(number)


def p4_error(err: P4RTError | None) -> p4runtime_pb2.Error:
    """The p4.v1.Error of one update: OK when `err` is None."""
    if err is None:
        return p4runtime_pb2.Error(canonical_code=code_pb2.OK)
    return p4runtime_pb2.Error(canonical_code=code_number(err.code), message=err.message)


def write_failure(results: Sequence[P4RTError | None]) -> tuple[grpc.StatusCode, str, bytes]:
    """Top-level code, message and serialized google.rpc.Status for a Write with >= 1 failure."""
    failed = [(i, e) for i, e in enumerate(results) if e is not None]
    assert failed, "write_failure needs at least one failed update"
    status = status_pb2.Status()
    if len(results) == 1:
        err = failed[0][1]
        status.code = code_number(err.code)
        status.message = err.message
        status.details.add().Pack(p4_error(err))
        return err.code, err.message, status.SerializeToString()
    status.code = code_pb2.UNKNOWN
    status.message = f"{len(failed)} of {len(results)} updates failed; first at index {failed[0][0]}: " \
                     f"{failed[0][1]}"
    for e in results:
        status.details.add().Pack(p4_error(e))
    return grpc.StatusCode.UNKNOWN, status.message, status.SerializeToString()


def parse_details(trailing_metadata: Sequence[tuple[str, bytes | str]] | None) -> list[p4runtime_pb2.Error]:
    """The p4.v1.Error details of a failed Write, from its trailing metadata ([] if absent)."""
    for key, value in trailing_metadata or ():
        if key == STATUS_DETAILS_KEY:
            status = status_pb2.Status()
            status.ParseFromString(value if isinstance(value, bytes) else value.encode())
            out = []
            for d in status.details:
                e = p4runtime_pb2.Error()
                if not d.Unpack(e):
                    raise ValueError(f"detail of type {d.type_url} is not a p4.v1.Error")
                out.append(e)
            return out
    return []


__all__ = ["STATUS_DETAILS_KEY", "P4RTError", "code_from_number", "code_name", "code_number",
           "p4_error", "parse_details", "write_failure"]
