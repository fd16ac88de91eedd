"""Checks deploy/: the Kubernetes manifests and systemd units parse, carry
what a deployment needs, and name only flags and ports the real binaries
have (read from their --helpfull)."""

import configparser
import glob
import os
import re
import shlex
import subprocess
import unittest

import yaml

WORKSPACE = os.environ.get("TEST_WORKSPACE", "contrail")


def runfile(path: str) -> str:
    return os.path.join(os.environ["TEST_SRCDIR"], WORKSPACE, path)


def binary_flags(binary: str) -> set:
    """The flags `binary` accepts, from its --helpfull."""
    run = subprocess.run([runfile(binary), "--helpfull"], capture_output=True, text=True,
                         timeout=120)
    flags = set(re.findall(r"^\s+--([A-Za-z0-9_]+) ", run.stdout + run.stderr, re.MULTILINE))
    if not flags:
        raise AssertionError(f"{binary} --helpfull listed no flags: {run.stdout}{run.stderr}")
    return flags


BINARIES = {"trainer": "trainer/trainer", "server": "server/server"}


def parse_args(args):
    """{flag: value} of --flag=value arguments; raises on anything else."""
    parsed = {}
    for arg in args:
        match = re.fullmatch(r"--([A-Za-z0-9_]+)=(.*)", arg)
        if not match:
            raise AssertionError(f"argument {arg!r} is not --flag=value")
        parsed[match.group(1)] = match.group(2)
    return parsed


def port_of(listen: str) -> int:
    return int(listen.rsplit(":", 1)[1])


class BinaryFlagsMixin:
    @classmethod
    def setUpClass(cls):
        cls.flags = {name: binary_flags(path) for name, path in BINARIES.items()}

    def assert_known_flags(self, binary: str, args: dict, where: str):
        unknown = sorted(set(args) - self.flags[binary])
        self.assertEqual(unknown, [], f"{where}: {binary} has no flag(s) {unknown}")


class KubernetesManifestTest(BinaryFlagsMixin, unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.objects = []
        for path in sorted(glob.glob(runfile("deploy/k8s/*.yaml"))):
            with open(path) as f:
                for doc in yaml.safe_load_all(f):
                    if doc is not None:
                        cls.objects.append((os.path.basename(path), doc))

    def find(self, kind, name):
        found = [doc for _, doc in self.objects
                 if doc["kind"] == kind and doc["metadata"]["name"] == name]
        self.assertEqual(len(found), 1, f"expected one {kind} {name}")
        return found[0]

    def container(self, workload):
        containers = workload["spec"]["template"]["spec"]["containers"]
        self.assertEqual(len(containers), 1)
        return containers[0]

    def test_every_object_has_the_fields_kubernetes_requires(self):
        self.assertGreater(len(self.objects), 0)
        for path, doc in self.objects:
            for field in ("apiVersion", "kind", "metadata"):
                self.assertIn(field, doc, path)
            self.assertIn("name", doc["metadata"], path)
            if doc["kind"] != "Namespace":
                self.assertEqual(doc["metadata"].get("namespace"), "contrail", path)
            if doc["kind"] in ("StatefulSet", "Deployment"):
                spec = doc["spec"]
                labels = spec["template"]["metadata"]["labels"]
                for key, value in spec["selector"]["matchLabels"].items():
                    self.assertEqual(labels.get(key), value, f"{path}: selector must match")
                for c in spec["template"]["spec"]["containers"]:
                    self.assertIn("image", c, path)
                    mounts = {m["name"] for m in c.get("volumeMounts", [])}
                    volumes = {v["name"] for v in spec["template"]["spec"].get("volumes", [])}
                    claims = {t["metadata"]["name"] for t in spec.get("volumeClaimTemplates", [])}
                    self.assertEqual(mounts - volumes - claims, set(), f"{path}: undefined volumes")

    def check_daemon(self, workload, binary):
        c = self.container(workload)
        self.assertEqual(c["command"], [f"/opt/contrail/bin/{binary}"])
        args = parse_args(c["args"])
        self.assert_known_flags(binary, args, workload["metadata"]["name"])
        ports = {p["containerPort"] for p in c["ports"]}
        for flag in ("listen", "health_listen", "metrics_listen"):
            if flag in args:
                self.assertIn(port_of(args[flag]), ports, f"--{flag} port is not exposed")
        # Files the flags name lie in mounted volumes.
        mounts = [m["mountPath"] for m in c.get("volumeMounts", [])]
        for flag in ("tls_cert", "tls_key", "tls_ca", "tokens_file", "trainer_token_file",
                     "state_dir"):
            if flag in args:
                self.assertTrue(any(args[flag].startswith(m) for m in mounts),
                                f"--{flag}={args[flag]} is in no mounted volume")
        # Beyond loopback, TLS is on (or the daemon would refuse to start).
        if not args["listen"].startswith("127."):
            self.assertTrue({"tls_cert", "tls_key", "tls_ca"} <= set(args) or "insecure" in args)
        return c, args

    def probe_ports(self, c):
        probes = [c[k] for k in ("startupProbe", "readinessProbe", "livenessProbe") if k in c]
        self.assertTrue(probes, "no probes")
        ports = []
        for probe in probes:
            for kind in ("grpc", "httpGet", "tcpSocket"):
                if kind in probe:
                    ports.append(probe[kind]["port"])
        return ports

    def test_trainer_is_a_statefulset_with_a_state_volume_and_mutual_tls(self):
        trainer = self.find("StatefulSet", "contrail-trainer")
        self.assertEqual(trainer["spec"]["replicas"], 1)
        c, args = self.check_daemon(trainer, "trainer")
        claims = {t["metadata"]["name"] for t in trainer["spec"]["volumeClaimTemplates"]}
        state_mount = [m for m in c["volumeMounts"] if m["name"] in claims]
        self.assertEqual(len(state_mount), 1)
        self.assertTrue(args["state_dir"].startswith(state_mount[0]["mountPath"]))
        self.assertTrue(args["source"].startswith("nats://contrail-nats:4222/"))
        self.assertIn("tokens_file", args)
        health = port_of(args["health_listen"])
        self.assertIn(health, self.probe_ports(c))

    def test_servers_are_a_deployment_probed_over_grpc_health_behind_a_service(self):
        server = self.find("Deployment", "contrail-server")
        c, args = self.check_daemon(server, "server")
        self.assertEqual(args["trainer"], "contrail-trainer:50051")
        health = port_of(args["health_listen"])
        self.assertEqual(c["readinessProbe"]["grpc"]["port"], health)
        self.assertEqual(c["livenessProbe"]["grpc"]["port"], health)
        service = self.find("Service", "contrail-server")
        self.assertEqual(service["spec"]["selector"],
                         server["spec"]["template"]["metadata"]["labels"])
        targets = {p["targetPort"] for p in service["spec"]["ports"]}
        self.assertIn(port_of(args["listen"]), targets)

    def test_services_point_at_exposed_ports(self):
        workloads = {doc["metadata"]["name"]: doc for _, doc in self.objects
                     if doc["kind"] in ("StatefulSet", "Deployment")}
        for _, doc in self.objects:
            if doc["kind"] != "Service":
                continue
            selected = [w for w in workloads.values()
                        if w["spec"]["template"]["metadata"]["labels"].items()
                        >= doc["spec"]["selector"].items()]
            self.assertEqual(len(selected), 1, doc["metadata"]["name"])
            exposed = {p["containerPort"] for p in self.container(selected[0])["ports"]}
            for port in doc["spec"]["ports"]:
                self.assertIn(port["targetPort"], exposed, doc["metadata"]["name"])

    def test_only_servers_reach_the_update_port(self):
        policy = self.find("NetworkPolicy", "contrail-trainer-ingress")
        trainer = self.find("StatefulSet", "contrail-trainer")
        server = self.find("Deployment", "contrail-server")
        self.assertEqual(policy["spec"]["podSelector"]["matchLabels"],
                         trainer["spec"]["selector"]["matchLabels"])
        update_port = port_of(parse_args(self.container(trainer)["args"])["listen"])
        rules = [r for r in policy["spec"]["ingress"]
                 if any(p["port"] == update_port for p in r["ports"])]
        self.assertEqual(len(rules), 1)
        self.assertEqual(rules[0]["from"],
                         [{"podSelector": {"matchLabels":
                                           server["spec"]["template"]["metadata"]["labels"]}}])

    def test_nats_runs_jetstream_on_a_volume(self):
        nats = self.find("StatefulSet", "contrail-nats")
        args = self.container(nats)["args"]
        self.assertIn("-js", args)
        store = args[args.index("-sd") + 1]
        mounts = [m["mountPath"] for m in self.container(nats)["volumeMounts"]]
        self.assertIn(store, mounts)


class SystemdUnitTest(BinaryFlagsMixin, unittest.TestCase):
    def load(self, name):
        parser = configparser.ConfigParser(strict=False, interpolation=None)
        parser.optionxform = str
        with open(runfile(f"deploy/systemd/{name}")) as f:
            parser.read_string(f.read().replace("\\\n", " "))
        for section in ("Unit", "Service", "Install"):
            self.assertIn(section, parser, name)
        return parser

    def check_daemon_unit(self, name, binary):
        unit = self.load(name)
        command = shlex.split(unit["Service"]["ExecStart"])
        self.assertEqual(command[0], f"/opt/contrail/bin/{binary}")
        args = parse_args(command[1:])
        self.assert_known_flags(binary, args, name)
        state = f"/var/lib/{unit['Service']['StateDirectory']}"
        self.assertEqual(args["state_dir"], state)
        self.assertEqual(unit["Service"]["Restart"], "always")
        return args

    def test_trainer_unit(self):
        args = self.check_daemon_unit("contrail-trainer.service", "trainer")
        self.assertTrue(args["source"].startswith("nats://127.0.0.1:4222/"))
        nats = self.load("contrail-nats.service")
        self.assertIn("-p 4222", nats["Service"]["ExecStart"])

    def test_server_unit(self):
        args = self.check_daemon_unit("contrail-server.service", "server")
        self.assertIn("trainer_token_file", args)


if __name__ == "__main__":
    unittest.main()
