"""Streams labelled examples into a contrail trainer, waits until a server
serves the model trained on them, and asks that server for predictions.

    bazel run //clients/python:ingest_and_predict -- \
        --trainer=127.0.0.1:50051 --server=127.0.0.1:50052 \
        --data=/usr/share/datasets/fashion-mnist --count=2000

The trainer must read its examples over IngestService (`--source=ingest`).
--data is a folder of Fashion-MNIST-named IDX files (the train- pair is
ingested, the t10k- pair predicted) or a .npz file with `inputs` and
`labels` (see make_tabular.py; --test_data names the examples to predict,
by default the ingested ones). Prints what each step did; exits 1 when a
step fails.
"""

import argparse
import os
import sys
import time

import numpy as np

import contrail_client
import contrail_data


def resolve(path: str) -> str:
    """`path` relative to where `bazel run` was called, not the runfiles."""
    base = os.environ.get("BUILD_WORKING_DIRECTORY", "")
    return os.path.join(base, path) if base else path


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trainer", default="127.0.0.1:50051", help="trainer host:port")
    parser.add_argument("--server", default="127.0.0.1:50052", help="server host:port")
    parser.add_argument("--data", default="/usr/share/datasets/fashion-mnist",
                        help="IDX folder or .npz file of examples to ingest")
    parser.add_argument("--test_data", default="",
                        help=".npz file of examples to predict (default: the IDX "
                             "folder's t10k- pair, or the ingested examples)")
    parser.add_argument("--skip", type=int, default=0,
                        help="examples at the head of --data to skip")
    parser.add_argument("--count", type=int, default=1000, help="examples to ingest")
    parser.add_argument("--predict", type=int, default=200, help="examples to predict")
    parser.add_argument("--wait_s", type=float, default=120.0,
                        help="how long to wait for training and serving")
    args = parser.parse_args()

    data = resolve(args.data)
    inputs, labels = contrail_data.load(data, train=True)
    inputs, labels = inputs[args.skip:args.skip + args.count], labels[args.skip:args.skip + args.count]
    if args.test_data:
        test_inputs, test_labels = contrail_data.read_npz(resolve(args.test_data))
    elif os.path.isdir(data):
        test_inputs, test_labels = contrail_data.read_fashion_mnist(data, train=False)
    else:
        test_inputs, test_labels = inputs, labels
    test_inputs, test_labels = test_inputs[:args.predict], test_labels[:args.predict]
    print(f"data: {len(labels)} examples of shape {list(inputs.shape[1:])} to ingest "
          f"from {data}; {len(test_labels)} to predict")

    with contrail_client.TrainerClient(args.trainer) as trainer, \
            contrail_client.ServerClient(args.server) as server:
        before = trainer.status()
        served_before = server.status()
        print(f"trainer {args.trainer}: {contrail_client.phase_name(before.phase)}, "
              f"source {before.source or '?'}, version {before.version}, "
              f"{before.examples_trained} examples trained")
        print(f"server {args.server}: {contrail_client.phase_name(served_before.phase)}, "
              f"version {served_before.version}")

        started = time.monotonic()
        summary = trainer.ingest(
            (x, int(y), f"{os.path.basename(data)}:{args.skip + i}")
            for i, (x, y) in enumerate(zip(inputs, labels)))
        reasons = ", ".join(f"{reason}: {count}"
                            for reason, count in sorted(summary.rejected_by_reason.items()))
        print(f"ingest: {summary.accepted} accepted, {summary.rejected} rejected"
              f"{f' ({reasons})' if reasons else ''} in {time.monotonic() - started:.1f} s")
        for rejection in summary.first_rejections:
            print(f"  rejected {rejection}")

        trained = trainer.wait_for_status(
            lambda s: (s.examples_queued == 0 and
                       s.examples_trained >= before.examples_trained + summary.accepted and
                       s.checksum == s.trainer_checksum),
            timeout_s=args.wait_s, what="training on the ingested examples")
        print(f"trainer: {trained.examples_trained} examples trained, published version "
              f"{trained.version} (checksum {trained.checksum:016x}), prequential "
              f"accuracy {trained.prequential_accuracy:.4f}")
        served = server.wait_for_status(
            lambda s: s.version >= trained.version, timeout_s=args.wait_s,
            what=f"version {trained.version}")
        same = "the trainer's model" if (served.version == trained.version and
                                         served.checksum == trained.checksum) else "a later one"
        print(f"server: version {served_before.version} -> {served.version} "
              f"(checksum {served.checksum:016x}): {same}")

        if len(test_labels) == 0:
            return 0
        answer = server.predict(test_inputs)
        correct = int(np.sum(np.asarray(answer.labels) == test_labels))
        print(f"predict: {len(answer.labels)} examples answered by version {answer.version}; "
              f"{correct} right ({correct / len(answer.labels):.3f})")
        for i in range(min(5, len(answer.labels))):
            print(f"  example {i}: label {test_labels[i]}, predicted {answer.labels[i]} "
                  f"(p = {max(answer.scores[i]):.3f})")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except (contrail_client.ContrailError, TimeoutError, RuntimeError, ValueError,
            OSError) as error:
        print(f"ingest_and_predict: {error}", file=sys.stderr)
        sys.exit(1)
