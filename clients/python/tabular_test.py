"""The tabular example end to end: the TorchScript MLP that
examples/make_tabular.py writes (16 raw features, 3 classes, normalisation
inside the model) trained by the real trainer from examples ingested
through the Python client, and served by the real server.
"""

import os
import tempfile
import unittest

import grpc
import numpy as np

import contrail_client
import contrail_data
import daemon_processes

WAIT_S = 90.0
FEATURES = 16
CLASSES = 3
MODEL = "clients/python/tabular_mlp.pt"


class TabularTest(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory(dir=os.environ.get("TEST_TMPDIR"))
        cls.addClassCleanup(cls.tmp.cleanup)
        cls.daemons = daemon_processes.DaemonSet(cls.tmp.name)
        cls.addClassCleanup(cls.daemons.stop_all)
        cls.train_inputs, cls.train_labels = contrail_data.read_npz(
            daemon_processes.runfile("clients/python/tabular_train.npz"))
        cls.test_inputs, cls.test_labels = contrail_data.read_npz(
            daemon_processes.runfile("clients/python/tabular_test.npz"))
        try:
            trainer = cls.daemons.start("trainer", "trainer/trainer", {
                "source": "ingest",
                "model": daemon_processes.runfile(MODEL),
                "initial_examples": "200",
                "initial_epochs": "5",
                "trigger_size": "8",
                "batch_size": "32",
                "lr": "0.01",
                "sparsity": "topk",
                "ratio": "0.1",
                "max_wait_ms": "100",
                "threads": "1",
            })
            server = cls.daemons.start("server", "server/server", {
                "trainer": trainer.address, "threads": "1"})
        except BaseException:
            print(cls.daemons.logs())
            raise
        cls.trainer = contrail_client.TrainerClient(trainer.address)
        cls.server = contrail_client.ServerClient(server.address)
        cls.addClassCleanup(cls.trainer.close)
        cls.addClassCleanup(cls.server.close)

    def run(self, result=None):
        failures = len(result.failures) + len(result.errors) if result else 0
        outcome = super().run(result)
        if result is not None and len(result.failures) + len(result.errors) > failures:
            print(self.daemons.logs())
        return outcome

    def test_raw_feature_vectors_are_ingested_trained_served_and_predicted(self):
        self.assertEqual(self.train_inputs.shape[1:], (FEATURES,))
        good = [(x, int(y)) for x, y in zip(self.train_inputs[:400], self.train_labels[:400])]
        bad = [
            (np.zeros((1, 28, 28), np.float32), 0, "an-image"),
            (self.train_inputs[0][:FEATURES - 1], 0, "15-features"),
            (self.train_inputs[0], CLASSES, "label-3"),
        ]
        summary = self.trainer.ingest(good[:100] + bad + good[100:])

        self.assertEqual(summary.accepted, 400)
        self.assertEqual(summary.rejected_by_reason,
                         {"wrong_shape": 2, "label_out_of_range": 1})
        self.assertIn("[16]", summary.first_rejections[0])
        trained = self.trainer.wait_for_status(
            lambda s: (s.examples_trained >= 400 and s.examples_queued == 0
                       and s.checksum == s.trainer_checksum),
            WAIT_S, what="400 examples trained and published")
        self.assertEqual(trained.spec.architecture, "torchscript:tabular_mlp.pt")
        self.assertEqual(list(trained.spec.input_shape), [FEATURES])
        self.assertEqual(trained.spec.num_classes, CLASSES)
        buffers = sorted(t.name for t in trained.spec.tensors if t.is_buffer)
        self.assertEqual(buffers, ["mean", "std"])
        served = self.server.wait_for_status(
            lambda s: (s.version, s.checksum) == (trained.version, trained.checksum),
            WAIT_S, what=f"version {trained.version} on the server")
        self.assertEqual(list(served.spec.input_shape), [FEATURES])

        answer = self.server.predict(self.test_inputs[:100])
        self.assertEqual(answer.version, trained.version)
        self.assertEqual(len(answer.labels), 100)
        self.assertEqual({len(scores) for scores in answer.scores}, {CLASSES})
        # Raw features, normalised inside the model: well above chance (1/3).
        accuracy = np.mean(np.asarray(answer.labels) == self.test_labels[:100])
        self.assertGreater(accuracy, 0.6)

        # A batch of images is not what this model takes.
        with self.assertRaises(contrail_client.ContrailError) as raised:
            self.server.predict(np.zeros((2, 1, 28, 28), np.float32))
        self.assertEqual(raised.exception.code, grpc.StatusCode.INVALID_ARGUMENT)
        self.assertIn("16", raised.exception.details)


if __name__ == "__main__":
    unittest.main()
