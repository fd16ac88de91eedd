"""A small Python client for contrail's trainer and server daemons.

    from contrail_client import ServerClient, TrainerClient

    with TrainerClient("127.0.0.1:50051") as trainer:
        summary = trainer.ingest((features, label) for features, label in rows)
        print(summary.accepted, summary.rejected_by_reason)

    with ServerClient("127.0.0.1:50052") as server:
        answer = server.predict(batch)          # batch: [N] + the model's input shape
        print(answer.labels, answer.version)

`TrainerClient` streams labelled examples into a trainer started with
`--source=ingest` (IngestService) and reads its status; `ServerClient` asks a
server for predictions (PredictionService) and reads its status. Both speak
the wire contract in proto/contrail.proto, whose Python code (contrail_pb2,
contrail_pb2_grpc) is generated from it by protoc: Bazel's
//clients/python:contrail_proto_py does that, or see clients/python/README.md.

Inputs are numpy arrays or nested Python lists (numpy is not required);
values go over the wire as float32. Inputs are raw: the model normalises
them. Nothing is validated here beyond what is needed to encode a tensor:
the daemons check shapes, finiteness and labels against the model and say
exactly what was wrong, so that the client never disagrees with them.

Every failed RPC raises `ContrailError`, which carries the gRPC status code
and the daemon's message. A client holds one gRPC channel; it is
thread-safe, as gRPC's channels and stubs are. Close it (or use `with`).
"""

import dataclasses
import time
from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence, Tuple

import grpc

import contrail_pb2
import contrail_pb2_grpc

__all__ = [
    "ContrailError",
    "ExampleError",
    "IngestSummary",
    "Predictions",
    "ServerClient",
    "TrainerClient",
    "phase_name",
]

# Deadline of a unary RPC (Predict, GetStatus) unless the call says otherwise.
DEFAULT_TIMEOUT_S = 30.0


class ContrailError(Exception):
    """A contrail RPC failed.

    Attributes:
      code: the grpc.StatusCode, e.g. grpc.StatusCode.INVALID_ARGUMENT.
      details: the daemon's message ("expected ... got ...").
      method: the RPC, e.g. "Predict".
    """

    def __init__(self, method: str, code: grpc.StatusCode, details: str):
        super().__init__(f"{method} failed: {code.name}: {details or '(no message)'}")
        self.method = method
        self.code = code
        self.details = details


class ExampleError(ValueError):
    """An example given to TrainerClient.ingest could not be encoded.

    Ingest stops at that example; the ones before it were sent, and
    `summary` is the trainer's answer for them.
    """

    def __init__(self, message: str, summary: Optional["IngestSummary"]):
        super().__init__(message)
        self.summary = summary


@dataclasses.dataclass(frozen=True)
class IngestSummary:
    """The trainer's answer to one ingest call (IngestSummary in the proto)."""

    accepted: int  # validated and queued for training
    rejected: int
    # Rejections by reason: "wrong_shape", "non_finite", "label_out_of_range".
    rejected_by_reason: Dict[str, int]
    # The first few rejections, each "example N (id X): why".
    first_rejections: List[str]


@dataclasses.dataclass(frozen=True)
class Predictions:
    """A server's answer to one predict call."""

    labels: List[int]  # the arg-max class of each example
    scores: List[List[float]]  # class probabilities, one list per example
    version: int  # the model version that answered


def phase_name(phase: int) -> str:
    """"SERVING", "DONE", ... for a StatusResponse.phase value."""
    return contrail_pb2.Phase.Name(phase)


def _is_array(data: Any) -> bool:
    return hasattr(data, "shape") and hasattr(data, "tolist")


def _shape_and_values(data: Any) -> Tuple[List[int], List[float]]:
    """The shape and row-major float values of an ndarray or nested lists.

    Duck-typed, so that numpy is optional: anything with `shape`, `reshape`
    and `tolist()` (numpy arrays, torch tensors) is taken as an array, also
    inside lists (a list of N arrays is a batch of N). Raises ValueError for
    ragged lists and TypeError for non-numbers.
    """
    if _is_array(data) and hasattr(data, "reshape"):
        return [int(d) for d in data.shape], [float(v) for v in data.reshape(-1).tolist()]
    shape: List[int] = []
    probe = data
    while True:
        if _is_array(probe):
            shape.extend(int(d) for d in probe.shape)
            break
        if not isinstance(probe, (list, tuple)):
            break
        shape.append(len(probe))
        if not probe:
            break
        probe = probe[0]
    values: List[float] = []

    def flatten(item: Any, depth: int) -> None:
        if _is_array(item):
            item = item.tolist()
        if depth == len(shape):
            if isinstance(item, (list, tuple)):
                raise ValueError(f"ragged input: expected shape {shape}")
            values.append(float(item))
            return
        if not isinstance(item, (list, tuple)) or len(item) != shape[depth]:
            raise ValueError(f"ragged input: expected shape {shape}")
        for element in item:
            flatten(element, depth + 1)

    flatten(data, 0)
    return shape, values


def _tensor(data: Any) -> contrail_pb2.Tensor:
    shape, values = _shape_and_values(data)
    tensor = contrail_pb2.Tensor(shape=shape)
    tensor.values.extend(values)
    return tensor


def _example(item: Any) -> contrail_pb2.Example:
    """An Example from an Example message or (inputs, label[, id])."""
    if isinstance(item, contrail_pb2.Example):
        return item
    if not isinstance(item, (tuple, list)) or len(item) not in (2, 3):
        raise ValueError(
            "an example is (inputs, label) or (inputs, label, id), "
            f"not {type(item).__name__}")
    inputs, label = item[0], item[1]
    if isinstance(label, float) and not label.is_integer():
        raise ValueError(f"label {label} is not a whole number")
    example = contrail_pb2.Example(inputs=_tensor(inputs), label=int(label))
    if len(item) == 3 and item[2] is not None:
        example.id = str(item[2])
    return example


class _Client:
    """A channel to one daemon and the StatusService every daemon has."""

    def __init__(self, target: str, timeout_s: float,
                 options: Optional[Sequence[Tuple[str, Any]]],
                 credentials: Optional[grpc.ChannelCredentials] = None,
                 token: Optional[str] = None):
        # Batches and models can be large: no limit on message sizes.
        channel_options = [
            ("grpc.max_send_message_length", -1),
            ("grpc.max_receive_message_length", -1),
        ]
        channel_options.extend(options or [])
        self.target = target
        self.timeout_s = timeout_s
        if credentials is not None:
            self._channel = grpc.secure_channel(target, credentials, options=channel_options)
        else:
            self._channel = grpc.insecure_channel(target, options=channel_options)
        self._metadata = [("authorization", f"Bearer {token}")] if token else []
        self._status_stub = contrail_pb2_grpc.StatusServiceStub(self._channel)

    def close(self) -> None:
        self._channel.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def _call(self, method: str, rpc: Callable, request: Any,
              timeout_s: Optional[float], **kwargs) -> Any:
        try:
            return rpc(request, timeout=timeout_s, metadata=self._metadata, **kwargs)
        except grpc.RpcError as error:
            raise ContrailError(method, error.code(), error.details()) from None

    def status(self, timeout_s: Optional[float] = None) -> contrail_pb2.StatusResponse:
        """The daemon's GetStatus answer (StatusResponse in the proto).

        `phase_name(status.phase)` names its phase.
        """
        return self._call("GetStatus", self._status_stub.GetStatus,
                          contrail_pb2.StatusRequest(),
                          timeout_s if timeout_s is not None else self.timeout_s)

    def wait_for_status(self, condition: Callable[[contrail_pb2.StatusResponse], bool],
                        timeout_s: float, poll_s: float = 0.05,
                        what: str = "the condition") -> contrail_pb2.StatusResponse:
        """Polls status() until `condition` holds for it; returns that status.

        Raises TimeoutError (with the last status) when `timeout_s` passes,
        ContrailError when a GetStatus fails, and RuntimeError when the
        daemon reports phase FAILED.
        """
        deadline = time.monotonic() + timeout_s
        while True:
            status = self.status()
            if condition(status):
                return status
            if status.phase == contrail_pb2.FAILED:
                raise RuntimeError(
                    f"{self.target} failed while waiting for {what}: "
                    f"{status.error_message} (code {status.error_code})")
            if time.monotonic() >= deadline:
                raise TimeoutError(
                    f"no {what} at {self.target} within {timeout_s} s; last status: "
                    f"phase {phase_name(status.phase)}, version {status.version}")
            time.sleep(poll_s)


class TrainerClient(_Client):
    """Client of a trainer: IngestService and StatusService."""

    def __init__(self, target: str, timeout_s: float = DEFAULT_TIMEOUT_S,
                 options: Optional[Sequence[Tuple[str, Any]]] = None,
                 credentials: Optional[grpc.ChannelCredentials] = None,
                 token: Optional[str] = None):
        """`target`: "host:port" of the trainer. `timeout_s`: deadline of
        status(). `options`: extra gRPC channel arguments. `credentials`:
        TLS (grpc.ssl_channel_credentials(ca, key, cert); a trainer with TLS
        requires the client certificate), None for plaintext. `token`: the
        bearer token sent with every call (roles ingest, status), if the
        trainer has a --tokens_file."""
        super().__init__(target, timeout_s, options, credentials, token)
        self._ingest_stub = contrail_pb2_grpc.IngestServiceStub(self._channel)

    def ingest(self, examples: Iterable[Any],
               timeout_s: Optional[float] = None) -> IngestSummary:
        """Streams `examples` to the trainer in one Ingest call.

        Each example is `(inputs, label)`, `(inputs, label, id)` or a
        contrail_pb2.Example; `inputs` has the model's per-example input
        shape (no batch dimension), raw values. `examples` may be a
        generator: it is read lazily, and while the trainer's queue is full
        gRPC flow control holds it back. The trainer rejects bad examples
        (wrong shape, non-finite values, label out of range) one by one and
        counts them by reason in the summary; the call goes on.

        `timeout_s`: deadline of the whole call; None (the default) for none,
        as a long stream takes as long as training does.

        Raises ContrailError (FAILED_PRECONDITION when the trainer reads
        another source or its stream has ended, UNAVAILABLE when it is
        unreachable or shuts down); ExampleError when an example cannot be
        encoded (ragged lists, a non-number), and whatever `examples` itself
        raises, each after the examples before it were sent and answered.
        """
        # gRPC reads the requests on its own thread, where an exception would
        # only cancel the call: the stream ends there instead, and the
        # exception is raised here once the trainer has answered.
        stopped: List[BaseException] = []
        sent = [0]

        def requests():
            iterator = iter(examples)
            while True:
                try:
                    item = next(iterator)
                except StopIteration:
                    return
                except Exception as error:  # the caller's iterable failed
                    stopped.append(error)
                    return
                try:
                    example = _example(item)
                except (ValueError, TypeError) as error:
                    stopped.append(ExampleError(f"example {sent[0]}: {error}", None))
                    return
                sent[0] += 1
                yield example

        response = self._call("Ingest", self._ingest_stub.Ingest, requests(), timeout_s)
        summary = IngestSummary(
            accepted=response.accepted,
            rejected=response.rejected,
            rejected_by_reason=dict(response.rejected_by_reason),
            first_rejections=list(response.first_rejections))
        if stopped and isinstance(stopped[0], ExampleError):
            raise ExampleError(
                f"{stopped[0]}; the {sent[0]} examples before it were sent "
                f"({summary.accepted} accepted, {summary.rejected} rejected)", summary)
        if stopped:
            raise stopped[0]
        return summary


class ServerClient(_Client):
    """Client of a server: PredictionService and StatusService."""

    def __init__(self, target: str, timeout_s: float = DEFAULT_TIMEOUT_S,
                 options: Optional[Sequence[Tuple[str, Any]]] = None,
                 credentials: Optional[grpc.ChannelCredentials] = None,
                 token: Optional[str] = None):
        """`target`: "host:port" of the server. `timeout_s`: deadline of
        predict() and status(). `options`: extra gRPC channel arguments.
        `credentials`: TLS (grpc.ssl_channel_credentials(ca)), None for
        plaintext. `token`: the bearer token sent with every call (roles
        predict, status), if the server has a --tokens_file."""
        super().__init__(target, timeout_s, options, credentials, token)
        self._prediction_stub = contrail_pb2_grpc.PredictionServiceStub(self._channel)

    def predict(self, batch: Any, timeout_s: Optional[float] = None) -> Predictions:
        """Predicts a batch: shape [N] + the model's input shape, raw values.

        `batch` is an ndarray or nested lists (a list of N examples). Raises
        ContrailError: INVALID_ARGUMENT for a batch the model does not take
        (the message says what was expected), UNAVAILABLE when the server
        holds no model yet or cannot be reached.
        """
        request = contrail_pb2.PredictRequest(inputs=_tensor(batch))
        response = self._call("Predict", self._prediction_stub.Predict, request,
                              timeout_s if timeout_s is not None else self.timeout_s)
        return Predictions(
            labels=[p.label for p in response.predictions],
            scores=[list(p.scores) for p in response.predictions],
            version=response.version)

