"""The server's Open Inference Protocol (KServe v2) gRPC API, driven the way
Triton's Python client (tritonclient.grpc) drives it: inputs declared with
their datatype and shape and sent as bytes in raw_input_contents, outputs
read from raw_output_contents with numpy.frombuffer. The real trainer
trains the tabular example (16 features, 3 classes) from ingested
examples and the real server serves it under --model_name=tabular; the
answers must equal contrail's own Predict at the same version.
"""

import os
import tempfile
import unittest

import grpc
import numpy as np

import contrail_client
import contrail_data
import daemon_processes
import grpc_predict_v2_pb2 as pb
import grpc_predict_v2_pb2_grpc as pb_grpc

WAIT_S = 90.0
RPC_TIMEOUT_S = 10.0
FEATURES = 16
CLASSES = 3
MODEL_NAME = "tabular"
MODEL = "clients/python/tabular_mlp.pt"
# Triton's datatype names and numpy's.
NUMPY_DTYPES = {"FP32": np.float32, "INT64": np.int64}


def infer_request(batch: np.ndarray, outputs=(), model_version: str = "",
                  request_id: str = "") -> pb.ModelInferRequest:
    """As tritonclient.grpc's InferenceServerClient.infer() builds it from an
    InferInput(name, shape, "FP32") whose data is set from numpy."""
    request = pb.ModelInferRequest(model_name=MODEL_NAME, model_version=model_version,
                                   id=request_id)
    tensor = request.inputs.add()
    tensor.name = "input"
    tensor.datatype = "FP32"
    tensor.shape.extend(batch.shape)
    request.raw_input_contents.append(np.ascontiguousarray(batch, np.float32).tobytes())
    for name in outputs:
        request.outputs.add().name = name
    return request


def as_numpy(response: pb.ModelInferResponse, name: str) -> np.ndarray:
    """As tritonclient.grpc's InferResult.as_numpy(): only raw outputs."""
    for index, output in enumerate(response.outputs):
        if output.name == name:
            array = np.frombuffer(response.raw_output_contents[index],
                                  dtype=NUMPY_DTYPES[output.datatype])
            return array.reshape(list(output.shape))
    raise KeyError(name)


class OpenInferenceTest(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory(dir=os.environ.get("TEST_TMPDIR"))
        cls.addClassCleanup(cls.tmp.cleanup)
        cls.daemons = daemon_processes.DaemonSet(cls.tmp.name)
        cls.addClassCleanup(cls.daemons.stop_all)
        train_inputs, train_labels = contrail_data.read_npz(
            daemon_processes.runfile("clients/python/tabular_train.npz"))
        cls.test_inputs, _ = contrail_data.read_npz(
            daemon_processes.runfile("clients/python/tabular_test.npz"))
        try:
            trainer = cls.daemons.start("trainer", "trainer/trainer", {
                "source": "ingest",
                "model": daemon_processes.runfile(MODEL),
                "initial_examples": "200",
                "initial_epochs": "2",
                "trigger_size": "8",
                "batch_size": "32",
                "lr": "0.01",
                "max_wait_ms": "100",
                "threads": "1",
            })
            server = cls.daemons.start("server", "server/server", {
                "trainer": trainer.address, "model_name": MODEL_NAME,
                "max_batch": "64", "max_example_floats": str(FEATURES), "threads": "1"})
        except BaseException:
            print(cls.daemons.logs())
            raise
        cls.trainer = contrail_client.TrainerClient(trainer.address)
        cls.server = contrail_client.ServerClient(server.address)
        cls.addClassCleanup(cls.trainer.close)
        cls.addClassCleanup(cls.server.close)
        cls.channel = grpc.insecure_channel(server.address)
        cls.addClassCleanup(cls.channel.close)
        cls.stub = pb_grpc.GRPCInferenceServiceStub(cls.channel)

        # Before the trainer has deployed anything (it waits for 200
        # examples): live, not ready, and ModelInfer is UNAVAILABLE.
        cls.live_before = cls.stub.ServerLive(pb.ServerLiveRequest(), timeout=RPC_TIMEOUT_S)
        cls.ready_before = cls.stub.ServerReady(pb.ServerReadyRequest(), timeout=RPC_TIMEOUT_S)
        cls.model_ready_before = cls.stub.ModelReady(
            pb.ModelReadyRequest(name=MODEL_NAME), timeout=RPC_TIMEOUT_S)
        try:
            cls.stub.ModelInfer(infer_request(cls.test_inputs[:1]), timeout=RPC_TIMEOUT_S)
            cls.infer_before = None
        except grpc.RpcError as error:
            cls.infer_before = error

        # Then a stream that ends: once every example is trained and
        # published and the server holds the trainer's last version, the
        # version stays put.
        summary = cls.trainer.ingest(
            [(x, int(y)) for x, y in zip(train_inputs[:400], train_labels[:400])])
        assert summary.accepted == 400, summary
        trained = cls.trainer.wait_for_status(
            lambda s: (s.examples_trained >= 400 and s.examples_queued == 0
                       and s.checksum == s.trainer_checksum),
            WAIT_S, what="400 examples trained and published")
        cls.served = cls.server.wait_for_status(
            lambda s: (s.version, s.checksum) == (trained.version, trained.checksum),
            WAIT_S, what=f"version {trained.version} on the server")

    def run(self, result=None):
        failures = len(result.failures) + len(result.errors) if result else 0
        outcome = super().run(result)
        if result is not None and len(result.failures) + len(result.errors) > failures:
            print(self.daemons.logs())
        return outcome

    def assertRpcError(self, call, code, substring):
        with self.assertRaises(grpc.RpcError) as raised:
            call()
        self.assertEqual(raised.exception.code(), code, raised.exception.details())
        self.assertIn(substring, raised.exception.details())

    def test_before_a_model_the_server_was_live_but_not_ready(self):
        self.assertTrue(self.live_before.live)
        self.assertFalse(self.ready_before.ready)
        self.assertFalse(self.model_ready_before.ready)
        self.assertIsNotNone(self.infer_before)
        self.assertEqual(self.infer_before.code(), grpc.StatusCode.UNAVAILABLE)

    def test_health_metadata_and_config_describe_the_served_model(self):
        version = str(self.served.version)
        stub = self.stub
        self.assertTrue(stub.ServerLive(pb.ServerLiveRequest(), timeout=RPC_TIMEOUT_S).live)
        self.assertTrue(stub.ServerReady(pb.ServerReadyRequest(), timeout=RPC_TIMEOUT_S).ready)
        self.assertTrue(stub.ModelReady(pb.ModelReadyRequest(name=MODEL_NAME),
                                        timeout=RPC_TIMEOUT_S).ready)
        self.assertTrue(stub.ModelReady(pb.ModelReadyRequest(name=MODEL_NAME, version=version),
                                        timeout=RPC_TIMEOUT_S).ready)
        self.assertFalse(stub.ModelReady(pb.ModelReadyRequest(name="contrail"),
                                         timeout=RPC_TIMEOUT_S).ready)

        server = stub.ServerMetadata(pb.ServerMetadataRequest(), timeout=RPC_TIMEOUT_S)
        self.assertEqual(server.name, "contrail")
        self.assertIn("model_configuration", server.extensions)

        metadata = stub.ModelMetadata(pb.ModelMetadataRequest(name=MODEL_NAME),
                                      timeout=RPC_TIMEOUT_S)
        self.assertEqual(metadata.name, MODEL_NAME)
        self.assertEqual(list(metadata.versions), [version])
        self.assertEqual(metadata.platform, "pytorch_libtorch")
        self.assertEqual([(t.name, t.datatype, list(t.shape)) for t in metadata.inputs],
                         [("input", "FP32", [-1, FEATURES])])
        self.assertEqual([(t.name, t.datatype, list(t.shape)) for t in metadata.outputs],
                         [("probabilities", "FP32", [-1, CLASSES]), ("label", "INT64", [-1])])

        # What perf_analyzer reads at start.
        config = stub.ModelConfig(pb.ModelConfigRequest(name=MODEL_NAME),
                                  timeout=RPC_TIMEOUT_S).config
        self.assertEqual(config.name, MODEL_NAME)
        self.assertEqual(config.max_batch_size, 64)
        self.assertEqual([(i.name, i.data_type, list(i.dims)) for i in config.input],
                         [("input", pb.TYPE_FP32, [FEATURES])])
        self.assertEqual([(o.name, o.data_type, list(o.dims)) for o in config.output],
                         [("probabilities", pb.TYPE_FP32, [CLASSES]),
                          ("label", pb.TYPE_INT64, [1])])

        self.assertRpcError(
            lambda: stub.ModelMetadata(pb.ModelMetadataRequest(name="contrail"),
                                       timeout=RPC_TIMEOUT_S),
            grpc.StatusCode.NOT_FOUND, f"this server serves one model, '{MODEL_NAME}'")

    def test_model_infer_with_raw_contents_answers_what_predict_answers(self):
        batch = self.test_inputs[:50].astype(np.float32)
        # The stream has ended, so the version should not move; should it
        # all the same, both calls are repeated until they meet at one.
        for _ in range(10):
            response = self.stub.ModelInfer(infer_request(batch, request_id="req-1"),
                                            timeout=RPC_TIMEOUT_S)
            predicted = self.server.predict(batch)
            if response.model_version == str(predicted.version):
                break
        self.assertEqual(response.model_version, str(predicted.version))
        self.assertEqual(response.model_version, str(self.served.version))
        self.assertEqual(response.model_name, MODEL_NAME)
        self.assertEqual(response.id, "req-1")
        self.assertEqual([o.name for o in response.outputs], ["probabilities", "label"])
        for output in response.outputs:
            self.assertFalse(output.HasField("contents"))

        probabilities = as_numpy(response, "probabilities")
        labels = as_numpy(response, "label")
        self.assertEqual(probabilities.shape, (50, CLASSES))
        self.assertEqual(labels.shape, (50,))
        # Bit for bit: the same model, the same batch, the same floats.
        np.testing.assert_array_equal(probabilities,
                                      np.asarray(predicted.scores, np.float32))
        np.testing.assert_array_equal(labels, np.asarray(predicted.labels, np.int64))

        # Typed contents (as KServe's and MLServer's clients may send them)
        # and a pinned version answer the same; only the requested outputs.
        typed = infer_request(batch, outputs=["label"], model_version=response.model_version)
        typed.ClearField("raw_input_contents")
        typed.inputs[0].contents.fp32_contents.extend(batch.reshape(-1).tolist())
        only_labels = self.stub.ModelInfer(typed, timeout=RPC_TIMEOUT_S)
        self.assertEqual([o.name for o in only_labels.outputs], ["label"])
        np.testing.assert_array_equal(as_numpy(only_labels, "label"), labels)

    def test_model_infer_errors_are_grpc_statuses_naming_what_is_wrong(self):
        batch = self.test_inputs[:2].astype(np.float32)
        stub = self.stub

        def infer(request):
            return lambda: stub.ModelInfer(request, timeout=RPC_TIMEOUT_S)

        wrong_model = infer_request(batch)
        wrong_model.model_name = "contrail"
        self.assertRpcError(infer(wrong_model), grpc.StatusCode.NOT_FOUND,
                            "unknown model 'contrail'")
        old_version = infer_request(batch, model_version="0")
        self.assertRpcError(infer(old_version), grpc.StatusCode.NOT_FOUND,
                            f"this server serves version {self.served.version}")
        self.assertRpcError(infer(infer_request(np.zeros((2, 1, 28, 28), np.float32))),
                            grpc.StatusCode.INVALID_ARGUMENT, "takes [N, 16]")
        short = infer_request(batch)
        short.raw_input_contents[0] = short.raw_input_contents[0][:-4]
        self.assertRpcError(infer(short), grpc.StatusCode.INVALID_ARGUMENT,
                            "holds 124 bytes; shape [2, 16] of FP32 needs 128")
        fp64 = infer_request(batch)
        fp64.inputs[0].datatype = "FP64"
        fp64.raw_input_contents[0] = batch.astype(np.float64).tobytes()
        self.assertRpcError(infer(fp64), grpc.StatusCode.INVALID_ARGUMENT,
                            "has datatype 'FP64'")
        self.assertRpcError(infer(infer_request(self.test_inputs[:65].astype(np.float32))),
                            grpc.StatusCode.INVALID_ARGUMENT,
                            "batch of 65 examples exceeds the limit of 64")


if __name__ == "__main__":
    unittest.main()
