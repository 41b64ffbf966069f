"""The one switch: in-process by default with Ray never imported, and the same audit on Ray."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

from auditkit.errors import AuditError
from auditkit.execution import InProcessExecutor
from auditkit.execution.base import shards
from auditkit.progress import SILENT
from tests.conftest import base_config, write_config

NO_RAY = "import sys; sys.modules['ray'] = None\n"  # `import ray` now raises ImportError


def tabular_audit(folder, credit_frame, auditors=None):
    credit_frame.to_csv(folder / "data.csv", index=False)
    config = base_config("data.csv", "models/mlp")
    del config["data"]["text"]
    config["model"] = {
        "adapter": "torch-tabular",
        "path": "models/mlp",
        "build": {"epochs": 5, "features": ["age", "amount", "purpose", "sex"]},
    }
    config["auditors"] = auditors or {"performance": {}, "fairness": {"n_boot": 200}}
    return write_config(folder, config)


def run_python(code: str, cwd):
    return subprocess.run([sys.executable, "-c", code], cwd=cwd, capture_output=True, text=True, timeout=600)


def test_the_default_path_never_imports_ray(tmp_path, credit_frame):
    config = tabular_audit(tmp_path, credit_frame)
    code = NO_RAY + (
        "from auditkit.runner import run_audit\n"
        f"result, _ = run_audit({str(config)!r}, out={str(tmp_path / 'out')!r})\n"
        "assert result.auditors['fairness'].by_group, 'fairness ran'\n"
        "loaded = sorted(m for m, v in sys.modules.items() if v is not None and m.split('.')[0] == 'ray')\n"
        "print('RAY_MODULES', loaded)\n"
    )
    done = run_python(code, tmp_path)
    assert done.returncode == 0, done.stderr
    assert "RAY_MODULES []" in done.stdout
    assert json.loads((tmp_path / "out" / "summary.json").read_text())["auditors"]["fairness"]


def test_asking_for_ray_without_ray_is_one_error_line(tmp_path, credit_frame):
    config = tabular_audit(tmp_path, credit_frame)
    code = NO_RAY + (
        "from auditkit.cli import main\n"
        f"sys.argv = ['auditkit', 'run', {str(config)!r}, '--ray', 'local', '--quiet']\n"
        "main()\n"
    )
    done = run_python(code, tmp_path)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "error: execution.engine: ray needs the optional extra: pip install 'auditkit[ray]'"
    ]


def test_validate_checks_ray_is_installed_without_importing_it(tmp_path, credit_frame):
    config = tabular_audit(tmp_path, credit_frame)
    raw = yaml.safe_load(config.read_text())
    raw["execution"] = {"engine": "ray", "address": "auto"}
    config.write_text(yaml.safe_dump(raw))
    code = (
        "from auditkit.cli import main\n"
        f"sys.argv = ['auditkit', 'validate', {str(config)!r}]\n"
        "try:\n    main()\nexcept SystemExit as e:\n    print('RAY' if 'ray' in sys.modules else 'NO_RAY'); raise\n"
    )
    absent = run_python(NO_RAY + code, tmp_path)
    assert absent.returncode == 2 and absent.stderr.strip().splitlines() == [
        "error: execution.engine: ray needs the optional extra: pip install 'auditkit[ray]'"
    ]
    present = run_python("import sys\n" + code, tmp_path)
    assert present.returncode == 0, present.stderr
    assert "ok  execution: ray at 'auto'" in present.stdout and "NO_RAY" in present.stdout


def test_shards_keep_order_and_cover_everything():
    items = list(range(10))
    cut = shards(items, 3)
    assert [len(s) for s in cut] == [4, 3, 3] and sum(cut, []) == items
    assert shards(items[:2], 5) == [[0], [1]]


def _square(x: int) -> int:
    return x * x


def _scaled(state: np.ndarray, shard: list[int]) -> list[float]:
    return [float(state.sum() * x) for x in shard]


def _state() -> np.ndarray:
    return np.arange(4.0)


def test_ray_executor_gives_the_in_process_results(ray_executor, tmp_path):
    import ray

    local = InProcessExecutor()
    items = list(range(7))
    assert ray_executor.map(_square, items) == local.map(_square, items)
    cut = shards(items, 3)
    assert ray_executor.map_with_state(_state, _scaled, cut) == local.map_with_state(_state, _scaled, cut)
    nodes = ray.nodes()
    assert nodes and all(node["NodeManagerAddress"] == "127.0.0.1" for node in nodes)  # loopback only


def test_ray_data_counts_equal_the_streamed_counts(ray_executor, tmp_path):
    from auditkit.streaming.counts import count_predictions
    from tests.test_streaming_fairness import SPEC, make_predictions, write_folder

    folder = write_folder(make_predictions(20_000, seed=3), tmp_path / "p", dictionary_first=False)
    local = count_predictions(folder, SPEC).sorted()
    on_ray = count_predictions(folder, SPEC, ray_executor).sorted()
    assert on_ray.groups == local.groups
    np.testing.assert_array_equal(on_ray.cells, local.cells)
    np.testing.assert_array_equal(on_ray.hist, local.hist)


def test_ray_data_names_the_bad_file_in_one_error(ray_executor, tmp_path):
    from auditkit.streaming.counts import count_predictions
    from tests.test_streaming_fairness import SPEC, make_predictions, write_folder

    folder = write_folder(make_predictions(6_000, seed=4), tmp_path / "p", dictionary_first=False)
    table = pq.read_table(folder / "part-1.parquet")
    scores = table.column("score").to_numpy().copy()
    scores[7] = 1.5
    pq.write_table(
        table.set_column(table.column_names.index("score"), "score", pa.array(scores)), folder / "part-1.parquet"
    )
    with pytest.raises(AuditError, match=r"part-1\.parquet: column 'score' must hold probabilities .*found 1\.5"):
        count_predictions(folder, SPEC, ray_executor)


def test_a_streamed_audit_on_ray_gives_the_in_process_summary(ray_executor, tmp_path):
    from auditkit.runner import run_audit
    from tests.test_streaming_audit import audit, make_frame, write_parts

    write_parts(make_frame(6_000, seed=5), tmp_path / "mixed")  # one file dictionary-encoded
    with pytest.raises(AuditError, match="Ray Data cannot read these files as one dataset"):
        run_audit(write_config(tmp_path, audit("mixed")), write=False, ray="local")
    write_parts(make_frame(6_000, seed=5), tmp_path / "preds", dictionary_first=False)
    config = write_config(tmp_path, audit("preds"))
    local, _ = run_audit(config, out=tmp_path / "local")
    on_ray, _ = run_audit(config, out=tmp_path / "ray", ray="local")  # joins the fixture's Ray
    assert any("Ray Data" in note for note in on_ray.notes)
    assert_same(
        _summary(tmp_path / "ray" / "summary.json")["auditors"],
        _summary(tmp_path / "local" / "summary.json")["auditors"],
    )


def assert_same(a, b, path: str = "") -> None:
    """Equal structure, strings, integers and flags; floats equal to float32 rounding (attributions
    are sums of float32 gradients, and shards batch their examples differently)."""
    if isinstance(a, float) or isinstance(b, float):
        assert a == pytest.approx(b, rel=1e-5, abs=1e-6), path
    elif isinstance(a, dict) and isinstance(b, dict):
        assert a.keys() == b.keys(), path
        for key in a:
            assert_same(a[key], b[key], f"{path}.{key}")
    elif isinstance(a, list) and isinstance(b, list):
        assert len(a) == len(b), path
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            assert_same(x, y, f"{path}[{i}]")
    else:
        assert a == b, path


def _summary(path) -> dict:
    summary = json.loads(path.read_text())
    summary.pop("provenance")
    return summary


def test_ray_local_run_gives_the_in_process_summary(tmp_path, credit_frame, ray_executor):
    from auditkit.runner import run_audit

    auditors = {
        "performance": {},
        "fairness": {"n_boot": 200},
        "explain": {"n_examples": 8, "n_boot": 100},
        "privacy": {"epsilons": [1.0], "epochs": 2, "n_boot": 100, "min_group_size": 10},
    }
    config = tabular_audit(tmp_path, credit_frame, auditors)
    run_audit(config, out=tmp_path / "local")  # builds the model once
    run_audit(config, out=tmp_path / "ray", ray="local")  # joins the running one-node Ray
    on_ray = _without_timings(_summary(tmp_path / "ray" / "summary.json"))
    local = _without_timings(_summary(tmp_path / "local" / "summary.json"))
    assert_same(on_ray, local)
    assert on_ray["auditors"]["privacy"] == local["auditors"]["privacy"]  # DP runs: equal to the last digit
    assert on_ray["auditors"]["fairness"] == local["auditors"]["fairness"]
    records = [
        [json.loads(line) for line in (tmp_path / name / "attributions.jsonl").open()] for name in ("ray", "local")
    ]
    assert len(records[0]) >= 8
    assert [(r["id"], r["steps"], [t["token"] for t in r["tokens"]]) for r in records[0]] == [
        (r["id"], r["steps"], [t["token"] for t in r["tokens"]]) for r in records[1]
    ]
    assert_same(records[0], records[1])


def _without_timings(summary: dict) -> dict:
    privacy = summary["auditors"].get("privacy")
    if privacy:
        for run in [privacy["non_private"], *privacy["runs"]]:
            run.pop("seconds", None)
    return summary


class _FakeAdapter:
    @classmethod
    def load(cls, model_config, data_config):
        import os

        return {"pid": os.getpid(), "scale": model_config["scale"]}


class _FakeEngine:
    """Attributions that depend only on the example, and which worker built the engine."""

    def __init__(self, adapter):
        self.adapter = adapter

    @classmethod
    def create(cls, adapter, data, options):
        return cls(adapter)

    def explain(self, split, positions, targets, f_inputs, tolerance, progress, schedule):
        texts = [split.texts[i] for i in positions]
        attributions = [
            (int(p), t * self.adapter["scale"], float(f), self.adapter["pid"])
            for p, t, f in zip(positions, targets, f_inputs, strict=True)
        ]
        return attributions, texts


def test_sharded_attributions_come_back_in_order_from_model_loading_workers(ray_executor):
    from types import SimpleNamespace

    from auditkit.explain.sharded import EngineFactory, deal, explain_sharded

    texts = [f"text {'x' * (i % 7)} {i}" for i in range(23)]
    split = SimpleNamespace(texts=texts)
    positions = np.array([1, 4, 5, 8, 9, 12, 13, 16, 17, 20, 21, 22])
    targets = [i % 2 for i in positions]
    f_inputs = positions * 0.5
    local_adapter = {"pid": -1, "scale": 3}
    factory = EngineFactory(_FakeEngine, _FakeAdapter, {"scale": 3}, None, None, None, adapter=local_adapter)
    args = (split, positions, targets, f_inputs, 0.01, [16], SILENT)
    local, local_texts = explain_sharded(InProcessExecutor(), factory, *args)
    remote, remote_texts = explain_sharded(ray_executor, factory, *args)
    assert (
        [a[:3] for a in remote]
        == [a[:3] for a in local]
        == [(int(p), t * 3, p * 0.5) for p, t in zip(positions, targets, strict=True)]
    )
    assert local_texts == remote_texts == [texts[i] for i in positions]
    assert {a[3] for a in local} == {-1}  # in process: the run's own adapter, no second load
    workers = {a[3] for a in remote}
    assert len(workers) == 2 and -1 not in workers  # two actors, each loaded its own model once
    shards = deal([len(texts[i]) for i in positions], 2)
    assert sorted(np.concatenate(shards).tolist()) == list(range(len(positions)))


def _closed_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]  # closed again when the block ends: nothing listens there


def test_ray_address_where_nothing_listens_is_one_line_and_exit_2(tmp_path, credit_frame):
    config = tabular_audit(tmp_path, credit_frame)
    address = f"127.0.0.1:{_closed_port()}"
    started = __import__("time").monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "auditkit.cli", "run", str(config), "--ray", address, "--quiet"],
        cwd=tmp_path, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: execution.address: no Ray cluster answers at '{address}'")
    assert __import__("time").monotonic() - started < 120  # the model build and imports; the connect is at once


@pytest.mark.parametrize("scheme", ["", "ray://"])
def test_ray_address_that_never_answers_fails_within_the_bound(tmp_path, scheme):
    import socket

    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(0)  # never accepted: once the queue is full, a new connection is never answered
    queued = []
    for _ in range(8):  # fill the accept queue: the kernel then leaves new connections unanswered
        try:
            queued.append(socket.create_connection(server.getsockname(), timeout=0.5))
        except TimeoutError:
            break
    address = f"{scheme}127.0.0.1:{server.getsockname()[1]}"
    code = (
        "import os, time\n"
        "os.environ['AUDITKIT_RAY_STDERR'] = 'quiet'  # as the command line sets it\n"
        "from auditkit.config import ExecutionSettings\n"
        "from auditkit.errors import AuditError\n"
        "from auditkit.execution.ray_executor import RayExecutor\n"
        "started = time.monotonic()\n"
        "try:\n"
        f"    RayExecutor(ExecutionSettings(engine='ray', address={address!r}, connect_timeout_s=2))\n"
        "except AuditError as exc:\n"
        "    print(exc)\n"
        "print(round(time.monotonic() - started, 2))\n"
    )
    try:
        done = run_python(code, tmp_path)
    finally:
        for connection in queued:
            connection.close()
        server.close()
    message, elapsed = done.stdout.strip().splitlines()
    assert message.startswith(f"execution.address: no Ray cluster answers at '{address}'"), message
    assert float(elapsed) >= 1.5 and float(elapsed) < 6, elapsed  # waited for the bound, not for Ray
    assert done.stderr.strip() == ""  # Ray's own retry lines stay out of the user's stderr


@pytest.mark.parametrize(
    ("address", "words"),
    [("ray://", "is not a Ray address"), ("", "is not a Ray address"), ("host:abc", "is not a Ray address"),
     ("host:70000", "port 70000 is outside 1-65535"), ("ray://host", "is not a Ray address")],
)  # fmt: skip
def test_malformed_ray_addresses_are_refused_before_anything_loads(address, words):
    from pydantic import ValidationError

    from auditkit.config import ExecutionSettings, ray_address_problem

    assert words in ray_address_problem(address)
    with pytest.raises(ValidationError, match=words):
        ExecutionSettings(engine="ray", address=address)


@pytest.mark.parametrize("address", ["local", "auto", "10.0.0.2:6379", "ray://head-svc:10001", "[::1]:6379"])
def test_well_formed_ray_addresses_pass(address):
    from auditkit.config import ray_address_problem

    assert ray_address_problem(address) is None


def test_a_malformed_ray_flag_is_one_line_before_the_model_loads(tmp_path, credit_frame):
    config = tabular_audit(tmp_path, credit_frame)
    done = subprocess.run(
        [sys.executable, "-m", "auditkit.cli", "run", str(config), "--ray", "ray://", "--quiet"],
        cwd=tmp_path, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 2 and done.stderr.strip().splitlines() == [
        "error: --ray 'ray://' is not a Ray address: use local, auto, host:port or ray://host:port"
    ]
    assert not (tmp_path / "models" / "mlp").exists()  # nothing was built: the address is checked first
