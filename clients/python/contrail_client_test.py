"""Tests of contrail_client against the real trainer and server binaries.

The daemons run as child processes on free loopback ports (port 0 and
--port_file) with their logs in TEST_TMPDIR, on a small synthetic
Fashion-MNIST-shaped data set that this test writes; every wait polls with
a deadline. A failing test prints the daemons' logs.
"""

import contextlib
import math
import os
import subprocess
import tempfile
import unittest

import grpc
import numpy as np

import contrail_client
import contrail_data
import contrail_pb2
import daemon_processes

# Training, serving and catching up; generous for a loaded 2-core machine.
WAIT_S = 90.0
SIDE = 28
CLASSES = 10


def synthetic_images(count: int, rng: np.random.Generator):
    """Learnable 28x28 images, as tests/test_util/idx_writer.h makes them:
    class c is a bright bar over rows 4 + 2c and 5 + 2c on a dim noisy
    background. uint8 [count, 28, 28] and labels [count]."""
    labels = np.resize(rng.permutation(CLASSES), count)
    images = rng.integers(0, 51, size=(count, SIDE, SIDE))
    for i, label in enumerate(labels):
        first, last = rng.integers(0, 7), rng.integers(21, SIDE)
        images[i, 4 + 2 * label:6 + 2 * label, first:last + 1] = rng.integers(
            180, 256, size=(2, last - first + 1))
    return images.astype(np.uint8), labels.astype(np.uint8)


def write_data_set(directory: str, train_count: int, test_count: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    for prefix, count in (("train", train_count), ("t10k", test_count)):
        images, labels = synthetic_images(count, rng)
        contrail_data.write_idx_pair(directory, prefix, images, labels)


class DaemonTestCase(unittest.TestCase):
    """Owns a temporary directory, a synthetic data set and the daemons a
    test class starts; stops and reaps them all."""

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory(dir=os.environ.get("TEST_TMPDIR"))
        cls.data_dir = os.path.join(cls.tmp.name, "data")
        write_data_set(cls.data_dir, train_count=600, test_count=100, seed=11)
        cls.test_inputs, cls.test_labels = contrail_data.read_fashion_mnist(
            cls.data_dir, train=False)
        cls.daemons = daemon_processes.DaemonSet(cls.tmp.name)
        cls.addClassCleanup(cls.tmp.cleanup)
        cls.addClassCleanup(cls.daemons.stop_all)

    @classmethod
    @contextlib.contextmanager
    def logs_on_failure(cls):
        """Prints the daemons' logs when the body raises."""
        try:
            yield
        except BaseException:
            print(cls.daemons.logs())
            raise

    def run(self, result=None):
        failures = len(result.failures) + len(result.errors) if result else 0
        outcome = super().run(result)
        if result is not None and len(result.failures) + len(result.errors) > failures:
            print(self.daemons.logs())
        return outcome

    @classmethod
    def trainer_flags(cls, **overrides):
        flags = {
            "data_dir": cls.data_dir,
            "model": "lenet5",
            "initial_examples": "64",
            "initial_epochs": "1",
            "stream_examples": "200",
            "trigger_size": "8",
            "batch_size": "32",
            "sparsity": "topk",
            "ratio": "0.01",
            "threads": "1",
        }
        flags.update({k: str(v) for k, v in overrides.items()})
        return flags

    @classmethod
    def start_trainer(cls, **overrides):
        return cls.daemons.start("trainer", "trainer/trainer", cls.trainer_flags(**overrides))

    @classmethod
    def start_server(cls, trainer_address: str, **overrides):
        flags = {"trainer": trainer_address, "threads": "1"}
        flags.update({k: str(v) for k, v in overrides.items()})
        return cls.daemons.start("server", "server/server", flags)


class ServerClientTest(DaemonTestCase):
    """Predict and GetStatus against a server that follows a replaying trainer."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        with cls.logs_on_failure():
            cls.start_daemons()

    @classmethod
    def start_daemons(cls):
        # Enough initial training for LeNet-5 to learn the synthetic classes,
        # so that predictions show the client's batches arrive intact.
        trainer = cls.start_trainer(initial_examples=400, initial_epochs=3, lr=0.003)
        server = cls.start_server(trainer.address, max_batch=16)
        cls.trainer = contrail_client.TrainerClient(trainer.address)
        cls.server = contrail_client.ServerClient(server.address)
        cls.addClassCleanup(cls.trainer.close)
        cls.addClassCleanup(cls.server.close)
        cls.trainer_status = cls.trainer.wait_for_status(
            lambda s: s.phase == contrail_pb2.DONE, WAIT_S,
            what="end of the stream")
        cls.server_status = cls.server.wait_for_status(
            lambda s: (s.version, s.checksum) == (cls.trainer_status.version,
                                                  cls.trainer_status.checksum),
            WAIT_S, what="the trainer's model")

    def test_status_reports_role_phase_and_the_trainers_model(self):
        self.assertEqual(self.trainer_status.role, "trainer")
        self.assertEqual(contrail_client.phase_name(self.trainer_status.phase), "DONE")
        self.assertGreater(self.trainer_status.version, 1)
        self.assertEqual(self.trainer_status.examples_seen, 200)
        self.assertEqual(list(self.trainer_status.spec.input_shape), [1, SIDE, SIDE])
        self.assertEqual(self.server_status.role, "server")
        self.assertEqual(contrail_client.phase_name(self.server_status.phase), "SERVING")
        self.assertEqual(self.server_status.checksum, self.trainer_status.trainer_checksum)

    def test_predict_answers_an_ndarray_batch_with_the_served_version(self):
        answer = self.server.predict(self.test_inputs[:16])
        self.assertEqual(answer.version, self.trainer_status.version)
        self.assertEqual(len(answer.labels), 16)
        self.assertEqual(len(answer.scores), 16)
        for label, scores in zip(answer.labels, answer.scores):
            self.assertEqual(len(scores), CLASSES)
            self.assertAlmostEqual(sum(scores), 1.0, places=4)
            self.assertEqual(label, int(np.argmax(scores)))

    def test_predict_takes_nested_lists_and_answers_as_for_the_ndarray(self):
        batch = self.test_inputs[:3]
        from_array = self.server.predict(batch)
        self.assertEqual(self.server.predict(batch.tolist()), from_array)
        self.assertEqual(self.server.predict(list(batch)), from_array)

    def test_the_served_model_learned_the_synthetic_classes(self):
        answer = self.server.predict(self.test_inputs[:16])
        correct = int(np.sum(np.asarray(answer.labels) == self.test_labels[:16]))
        self.assertGreaterEqual(correct, 8, answer.labels)

    def test_bad_batches_raise_invalid_argument_with_the_servers_reason(self):
        nan = self.test_inputs[:2].copy()
        nan[1, 0, 3, 4] = math.nan
        bad = {
            "no batch dimension": self.test_inputs[0],
            "27 columns": self.test_inputs[:1, :, :, :27],
            "NaN": nan,
            "over --max_batch": np.zeros((17, 1, SIDE, SIDE), np.float32),
        }
        for what, batch in bad.items():
            with self.subTest(what):
                with self.assertRaises(contrail_client.ContrailError) as raised:
                    self.server.predict(batch)
                self.assertEqual(raised.exception.code, grpc.StatusCode.INVALID_ARGUMENT)
                self.assertEqual(raised.exception.method, "Predict")
                self.assertTrue(raised.exception.details)
                self.assertIn("INVALID_ARGUMENT", str(raised.exception))
        with self.assertRaises(contrail_client.ContrailError) as raised:
            self.server.predict(nan)
        self.assertIn("not finite", raised.exception.details)
        # The server goes on serving.
        self.assertEqual(len(self.server.predict(self.test_inputs[:1]).labels), 1)

    def test_ragged_lists_are_a_value_error_before_anything_is_sent(self):
        predictions = self.server.status().predictions
        with self.assertRaises(ValueError):
            self.server.predict([[[0.0] * SIDE] * SIDE, [[0.0] * SIDE] * (SIDE - 1)])
        self.assertEqual(self.server.status().predictions, predictions)

    def test_ingest_into_a_replaying_trainer_is_refused(self):
        with self.assertRaises(contrail_client.ContrailError) as raised:
            self.trainer.ingest([(self.test_inputs[0], 1)])
        self.assertEqual(raised.exception.method, "Ingest")
        self.assertEqual(raised.exception.code, grpc.StatusCode.FAILED_PRECONDITION)
        self.assertIn("--source=ingest", raised.exception.details)


class IngestTest(DaemonTestCase):
    """Ingest into a trainer that reads its examples over IngestService
    (--source=ingest), with a server following it."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.train_inputs, cls.train_labels = contrail_data.read_fashion_mnist(cls.data_dir)
        with cls.logs_on_failure():
            # The first 64 examples ingested are the initial training set; a
            # step waits at most 100 ms for its 8 new examples.
            trainer = cls.start_trainer(source="ingest", stream_examples=0,
                                        initial_examples=64, initial_epochs=1,
                                        max_wait_ms=100, lr=0.003)
            server = cls.start_server(trainer.address)
        cls.trainer = contrail_client.TrainerClient(trainer.address)
        cls.server = contrail_client.ServerClient(server.address)
        cls.addClassCleanup(cls.trainer.close)
        cls.addClassCleanup(cls.server.close)

    def good(self, begin: int, end: int):
        return [(self.train_inputs[i], int(self.train_labels[i]), f"good-{i}")
                for i in range(begin, end)]

    def wait_until_trained_and_served(self, examples_trained: int):
        """The trainer's status once it has trained `examples_trained`
        examples and published everything, and the server's once it holds
        that model."""
        trained = self.trainer.wait_for_status(
            lambda s: (s.examples_trained >= examples_trained and s.examples_queued == 0
                       and s.version > 0 and s.checksum == s.trainer_checksum),
            WAIT_S, what=f"{examples_trained} examples trained and published")
        served = self.server.wait_for_status(
            lambda s: (s.version, s.checksum) == (trained.version, trained.checksum),
            WAIT_S, what=f"version {trained.version} on the server")
        return trained, served

    def test_ingest_counts_rejections_by_reason_trains_on_the_rest_and_serves_it(self):
        before = self.trainer.status()
        image = self.train_inputs[0]
        nan, infinite = image.copy(), image.copy()
        nan[0, 10, 10] = math.nan
        infinite[0, 0, 0] = math.inf
        bad = [
            (image[:, :27, :], 1, "bad-27-rows"),
            (image.reshape(-1), 1, "bad-flat"),
            (nan, 1, "bad-nan"),
            (infinite, 1, "bad-infinite"),
            (image, CLASSES, "bad-label-10"),
            (image, -1, "bad-label-minus-1"),
        ]
        examples = self.good(0, 80)
        for position, example in zip((3, 20, 41, 42, 60, 79), bad):
            examples.insert(position, example)

        summary = self.trainer.ingest(examples)

        self.assertEqual(summary.accepted, 80)
        self.assertEqual(summary.rejected, 6)
        self.assertEqual(summary.rejected_by_reason, {
            "wrong_shape": 2, "non_finite": 2, "label_out_of_range": 2})
        self.assertEqual(len(summary.first_rejections), 5)
        self.assertIn("example 3 (id bad-27-rows)", summary.first_rejections[0])
        trained, served = self.wait_until_trained_and_served(
            before.examples_trained + 80)
        self.assertEqual(trained.source, "ingest")
        self.assertEqual(trained.examples_accepted - before.examples_accepted, 80)
        self.assertEqual(trained.examples_rejected - before.examples_rejected, 6)
        self.assertGreater(trained.version, before.version)
        self.assertEqual(served.checksum, trained.trainer_checksum)
        answer = self.server.predict(self.test_inputs[:5])
        self.assertEqual(answer.version, trained.version)
        self.assertEqual(len(answer.labels), 5)
        self.assertEqual([len(s) for s in answer.scores], [CLASSES] * 5)

        # More examples move the served version on.
        more = self.trainer.ingest(self.good(80, 120))
        self.assertEqual((more.accepted, more.rejected), (40, 0))
        later, _ = self.wait_until_trained_and_served(trained.examples_trained + 40)
        self.assertGreater(later.version, trained.version)
        self.assertEqual(self.server.predict(self.test_inputs[:1]).version, later.version)

    def test_an_example_that_cannot_be_encoded_ends_the_call_after_those_before(self):
        ragged = [[[0.0] * SIDE] * SIDE, [[0.0] * SIDE]]
        with self.assertRaises(contrail_client.ExampleError) as raised:
            self.trainer.ingest(self.good(200, 202) + [(ragged, 1)] + self.good(202, 204))
        self.assertIn("example 2", str(raised.exception))
        self.assertEqual(raised.exception.summary.accepted, 2)

    def test_an_iterable_that_raises_ends_the_call_with_its_exception(self):
        def examples():
            yield from self.good(210, 213)
            raise OSError("the producer's disk went away")

        with self.assertRaisesRegex(OSError, "disk went away"):
            self.trainer.ingest(examples())


class IngestAndPredictExampleTest(DaemonTestCase):
    """examples/ingest_and_predict.py against fresh daemons."""

    def test_the_example_ingests_a_npz_file_waits_for_the_server_and_predicts(self):
        inputs, labels = contrail_data.read_fashion_mnist(self.data_dir)
        npz = os.path.join(self.tmp.name, "examples.npz")
        contrail_data.write_npz(npz, inputs[:150], labels[:150])
        trainer = self.start_trainer(source="ingest", stream_examples=0,
                                     initial_examples=64, max_wait_ms=100)
        server = self.start_server(trainer.address)

        run = subprocess.run(
            [daemon_processes.runfile("clients/python/ingest_and_predict"),
             f"--trainer={trainer.address}", f"--server={server.address}",
             f"--data={npz}", "--count=150", "--predict=20", f"--wait_s={WAIT_S}"],
            stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=2 * WAIT_S)

        self.assertEqual(run.returncode, 0, run.stdout + run.stderr)
        self.assertIn("ingest: 150 accepted, 0 rejected", run.stdout)
        with contrail_client.TrainerClient(trainer.address) as client:
            status = client.status()
        self.assertEqual(status.examples_trained, 150)
        self.assertIn(f"server: version 0 -> {status.version} ", run.stdout)
        self.assertIn("the trainer's model", run.stdout)
        self.assertIn(f"predict: 20 examples answered by version {status.version};",
                      run.stdout)

    def test_the_example_exits_1_with_the_reason_when_ingest_is_refused(self):
        trainer = self.start_trainer()  # replays its data set
        server = self.start_server(trainer.address)
        run = subprocess.run(
            [daemon_processes.runfile("clients/python/ingest_and_predict"),
             f"--trainer={trainer.address}", f"--server={server.address}",
             f"--data={self.data_dir}", "--count=10"],
            stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=2 * WAIT_S)
        self.assertEqual(run.returncode, 1, run.stdout + run.stderr)
        self.assertIn("Ingest failed: FAILED_PRECONDITION", run.stderr)


def make_certificates(directory: str):
    """A CA and one certificate for localhost (serverAuth and clientAuth)
    signed by it, made with openssl: (ca, cert, key) paths."""
    def openssl(*args):
        subprocess.run(["openssl", *args], check=True, capture_output=True)
    ca, ca_key = os.path.join(directory, "ca.pem"), os.path.join(directory, "ca.key")
    cert, key = os.path.join(directory, "leaf.pem"), os.path.join(directory, "leaf.key")
    csr, ext = os.path.join(directory, "leaf.csr"), os.path.join(directory, "leaf.ext")
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
            "-subj", "/CN=python test CA", "-keyout", ca_key, "-out", ca)
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=localhost",
            "-keyout", key, "-out", csr)
    with open(ext, "w") as f:
        f.write("subjectAltName=DNS:localhost,IP:127.0.0.1\n"
                "extendedKeyUsage=serverAuth,clientAuth\n")
    openssl("x509", "-req", "-in", csr, "-CA", ca, "-CAkey", ca_key, "-CAcreateserial",
            "-days", "2", "-extfile", ext, "-out", cert)
    return ca, cert, key


class SecureClientTest(DaemonTestCase):
    """The clients over mutual TLS with bearer tokens."""

    TOKEN = "python0123456789python0123456789"

    def test_tls_and_token_are_sent_and_a_missing_token_is_unauthenticated(self):
        ca, cert, key = make_certificates(self.tmp.name)
        tokens = os.path.join(self.tmp.name, "tokens")
        with open(tokens, "w") as f:
            f.write(f"{self.TOKEN} python status,ingest\n")
        trainer = self.start_trainer(tls_cert=cert, tls_key=key, tls_ca=ca, tokens_file=tokens)
        port = trainer.address.rsplit(":", 1)[1]

        def read(path):
            with open(path, "rb") as f:
                return f.read()
        credentials = grpc.ssl_channel_credentials(read(ca), read(key), read(cert))
        with contrail_client.TrainerClient(f"localhost:{port}", credentials=credentials,
                                           token=self.TOKEN) as client:
            self.assertEqual(client.status().role, "trainer")
        with contrail_client.TrainerClient(f"localhost:{port}",
                                           credentials=credentials) as client:
            with self.assertRaises(contrail_client.ContrailError) as raised:
                client.status()
            self.assertEqual(raised.exception.code, grpc.StatusCode.UNAUTHENTICATED)
        with contrail_client.TrainerClient(trainer.address, timeout_s=5) as client:
            with self.assertRaises(contrail_client.ContrailError) as raised:
                client.status()
            self.assertEqual(raised.exception.code, grpc.StatusCode.UNAVAILABLE)


class UnreachableTest(DaemonTestCase):
    """What a client sees from a server without a model, or no daemon."""

    def test_a_server_without_a_model_is_unavailable(self):
        # Port 1 on loopback: the server never gets a snapshot.
        server = self.start_server("127.0.0.1:1")
        with contrail_client.ServerClient(server.address) as client:
            self.assertEqual(contrail_client.phase_name(client.status().phase), "WAITING")
            with self.assertRaises(contrail_client.ContrailError) as raised:
                client.predict(np.zeros((1, 1, SIDE, SIDE), np.float32))
            self.assertEqual(raised.exception.code, grpc.StatusCode.UNAVAILABLE)
            self.assertIn("no model", raised.exception.details)

    def test_no_daemon_at_the_target_is_unavailable(self):
        with contrail_client.TrainerClient("127.0.0.1:1", timeout_s=5) as client:
            with self.assertRaises(contrail_client.ContrailError) as raised:
                client.status()
            self.assertEqual(raised.exception.code, grpc.StatusCode.UNAVAILABLE)
            self.assertEqual(raised.exception.method, "GetStatus")


if __name__ == "__main__":
    unittest.main()
